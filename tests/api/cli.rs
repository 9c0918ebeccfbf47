//! The binary itself: configuration errors are one clear line and a non-zero exit; `migrate`
//! prints what it applied; `healthcheck` exit codes follow `GET /api`.

use std::process::Output;

use tokio::process::Command;

use crate::helpers::node::{JWT_SECRET, node_env};
use crate::helpers::{TestDb, spawn_node};

const BIN: &str = env!("CARGO_BIN_EXE_bosar-chat");

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run bosar-chat")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[actix_web::test]
async fn serve_refuses_missing_or_malformed_configuration_with_one_line() {
    let db = "postgres://u:p@127.0.0.1:1/db";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("JWT_SECRET", JWT_SECRET)], "DATABASE_URL"),
        (&[("DATABASE_URL", db)], "JWT_SECRET"),
        (
            &[("DATABASE_URL", db), ("JWT_SECRET", "too-short")],
            "JWT_SECRET",
        ),
        (
            &[
                ("DATABASE_URL", db),
                ("JWT_SECRET", JWT_SECRET),
                ("PORT", "http"),
            ],
            "PORT",
        ),
        (
            &[
                ("DATABASE_URL", db),
                ("JWT_SECRET", JWT_SECRET),
                ("REDIS_SHARDED", "sometimes"),
            ],
            "REDIS_SHARDED",
        ),
    ];
    for (env, key) in cases {
        let output = run(&["serve"], env).await;
        let message = stderr(&output);
        assert!(!output.status.success(), "{key}: should fail");
        assert!(message.contains(key), "{key}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    }
}

#[actix_web::test]
async fn migrate_prints_what_it_applied_then_nothing() {
    let db = TestDb::create_empty().await;
    let env = [("DATABASE_URL", db.url.as_str())];

    let first = run(&["migrate"], &env).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("applied ")).count(),
        crate::helpers::migration_count(),
        "{stdout}"
    );

    let second = run(&["migrate"], &env).await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "no pending migrations"
    );
}

#[actix_web::test]
async fn healthcheck_exit_code_follows_get_api() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "hc-1", &[])).await;
    let url = node.url("/api");

    let healthy = run(&["healthcheck", "--url", &url], &[]).await;
    assert!(healthy.status.success(), "{}", stderr(&healthy));

    // Default URL: http://127.0.0.1:$PORT/api.
    let port = node.port.to_string();
    let by_port = run(&["healthcheck"], &[("PORT", &port)]).await;
    assert!(by_port.status.success(), "{}", stderr(&by_port));

    node.state.start_draining();
    let draining = run(&["healthcheck", "--url", &url], &[]).await;
    assert!(!draining.status.success());
    assert!(stderr(&draining).contains("503"), "{}", stderr(&draining));

    let closed = run(&["healthcheck", "--url", "http://127.0.0.1:1/api"], &[]).await;
    assert!(!closed.status.success());
    assert_eq!(
        stderr(&closed).trim_end().lines().count(),
        1,
        "{}",
        stderr(&closed)
    );
}
