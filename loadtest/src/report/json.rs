//! `--json FILE`: the whole [`Report`] as pretty-printed JSON, for scripts and for comparing
//! runs.

use std::path::Path;

use anyhow::Context;

use super::Report;

pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
