//! A fresh, fully migrated database per test, cloned from a template (`CREATE DATABASE … TEMPLATE`)
//! so that tests run in parallel without sharing rows. The template is built once per version of
//! the migrations, under an advisory lock, and renamed into place only when complete.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::OnceCell;

use super::env_url;

pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

impl TestDb {
    /// A new database holding the full schema and no rows.
    pub async fn create() -> Self {
        let admin_url = env_url("DATABASE_URL");
        let template = TEMPLATE
            .get_or_init(|| ensure_template(admin_url.clone()))
            .await;
        let name = format!("bosar_test_{}", uuid::Uuid::new_v4().simple());
        admin_execute(
            &admin_url,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        Self {
            url: database_url(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// A new database with nothing in it, not even the migrations.
    pub async fn create_empty() -> Self {
        let admin_url = env_url("DATABASE_URL");
        let name = format!("bosar_test_{}", uuid::Uuid::new_v4().simple());
        admin_execute(
            &admin_url,
            &format!("CREATE DATABASE {name} TEMPLATE template0"),
        )
        .await;
        Self {
            url: database_url(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Rows in `messages`.
    pub async fn message_count(&self) -> i64 {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        bosar_chat::store::schema::messages::table
            .count()
            .get_result(&mut self.connect().await)
            .await
            .unwrap()
    }
}

/// The output of an `EXPLAIN …` statement, its lines joined (one line for `FORMAT JSON`).
pub async fn explain(conn: &mut AsyncPgConnection, statement: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let lines: Vec<Line> = diesel::sql_query(statement)
        .load(conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for TestDb {
    /// Drops the database on a short-lived thread. The wait is bounded: this runs on the test's
    /// runtime thread, where a node's task may be half-way through opening a connection; that
    /// backend cannot absorb `DROP … WITH (FORCE)`'s signal until PostgreSQL's authentication
    /// timeout (60 s), so rather than stall, a slow drop is left behind (and `make test` drops
    /// leftovers before the next run).
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = diesel::sql_query(sql).execute(&mut conn).await;
                }
            });
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(std::time::Duration::from_secs(3));
    }
}

/// The admin URL pointed at another database of the same server.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

async fn admin_execute(admin_url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .expect("connect to the admin database");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A name that changes whenever any migration file changes.
fn migrations_fingerprint() -> u64 {
    let mut files = Vec::new();
    collect_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
        &mut files,
    );
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file)
            .expect("read migration")
            .hash(&mut hasher);
    }
    hasher.finish()
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read migrations dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

const TEMPLATE_LOCK_KEY: i64 = 0x7465_6d70_6c61_7465;

async fn ensure_template(admin_url: String) -> String {
    let name = format!("bosar_tpl_{:016x}", migrations_fingerprint());
    let mut conn = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect to the admin database");
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)
        .await
        .expect("template lock");
    let exists = diesel::sql_query(format!(
        "SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"
    ))
    .execute(&mut conn)
    .await
    .expect("look up template")
        > 0;
    if !exists {
        let building = format!("{name}_building");
        for sql in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building} TEMPLATE template0"),
        ] {
            diesel::sql_query(&sql)
                .execute(&mut conn)
                .await
                .expect(&sql);
        }
        bosar_chat::store::migrate::run_pending(&bosar_chat::config::DatabaseConfig::for_url(
            &database_url(&admin_url, &building),
        ))
        .await
        .expect("migrate the template");
        let sql = format!("ALTER DATABASE {building} RENAME TO {name}");
        diesel::sql_query(&sql)
            .execute(&mut conn)
            .await
            .expect(&sql);
    }
    diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)
        .await
        .expect("template unlock");
    name
}
