//! Group-commit benchmark: committed messages per second and send→ack latency through the real
//! commit lanes into the real PostgreSQL, with 1, 20 and 200 concurrent senders, spread over
//! many rooms or all into one hot room. Closed loop: each sender keeps `DEPTH` messages in
//! flight, as a WebSocket client that pipelines its sends would (peak throughput). Open loop: the
//! senders together offer a fixed rate whatever the acks do (latency at a given load).
//!
//! `make bench` (or `cargo bench --bench commit`) with `DATABASE_URL` pointing at a server where
//! the bench may create and drop a database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosar_chat::committer::Pending;
use bosar_chat::config::Config;
use bosar_chat::startup::Application;
use bosar_chat::store::{migrate, rooms, users};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

const RUN: Duration = Duration::from_secs(5);
const WARMUP: Duration = Duration::from_secs(1);
const DEPTH: usize = 8;

struct Outcome {
    committed: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

#[allow(clippy::print_stdout)]
fn main() -> anyhow::Result<()> {
    let admin = std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("set DATABASE_URL"))?;
    actix_rt::System::new().block_on(async move {
        let name = format!("bosar_bench_{}", std::process::id());
        let url = database_url(&admin, &name);
        execute(&admin, &format!("CREATE DATABASE {name}")).await?;
        let result = run_all(&url).await;
        execute(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await?;
        let rows = result?;
        println!("| senders | rooms | committed/s | ack p50 ms | p99 ms | p99.9 ms | max ms |");
        println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
        for (senders, layout, o) in rows {
            let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "| {senders} | {layout} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                o.committed as f64 / o.elapsed.as_secs_f64(),
                ms(0.5),
                ms(0.99),
                ms(0.999),
                o.latency.max() as f64 / 1000.0,
            );
        }
        Ok(())
    })
}

async fn run_all(url: &str) -> anyhow::Result<Vec<(String, &'static str, Outcome)>> {
    migrate::run_pending(&bosar_chat::config::DatabaseConfig::for_url(url)).await?;
    let mut env: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", url),
        ("JWT_SECRET", "bench-secret-bench-secret-bench-secret-0"),
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        ("RUN_MIGRATIONS", "false"),
        // The commit path alone: the indexer's cost is the search bench's subject.
        ("EMBEDDINGS_PROVIDER", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // A single node's default lanes, unless the bench is run with `COMMIT_LANES` set.
    if let Ok(lanes) = std::env::var("COMMIT_LANES") {
        env.insert("COMMIT_LANES".to_owned(), lanes);
    }
    let app = Application::build(Config::from_source(&env)?).await?;
    let state = app.state();
    // The commit lanes run on the node's first HTTP worker, which starts with the server.
    actix_rt::spawn(app.run_until_stopped());
    let user = users::create(&state.pool, "bench", None).await?;
    let user_name: Arc<str> = Arc::from("bench");

    let mut rooms_made = Vec::new();
    for i in 0..200 {
        let name = format!("room-{i}");
        rooms::create(&state.pool, &name, false, user.id).await?;
        let access = rooms::access(&state.pool, &name, user.id)
            .await?
            .expect("room");
        let name: Arc<str> = Arc::from(name);
        let addr = state.registry.get_or_start(&name, &access, &state);
        rooms_made.push((name, access.room_id, addr));
    }

    let targets = |senders: usize, hot: bool| -> Vec<_> {
        (0..senders)
            .map(|i| rooms_made[if hot { 0 } else { i % rooms_made.len() }].clone())
            .collect()
    };
    // `cargo bench --bench commit -- open` runs the open-loop rows alone, on a fresh table.
    let only_open = std::env::args().skip(1).any(|a| a == "open");
    let mut rows = Vec::new();
    for senders in [1usize, 20, 200].into_iter().filter(|_| !only_open) {
        for (layout, hot) in [("many", false), ("one hot", true)] {
            if senders == 1 && hot {
                continue; // the same as "many" with one sender
            }
            let outcome = run(&state, user.id, &user_name, targets(senders, hot), None).await;
            rows.push((
                format!("{senders}, {DEPTH} in flight each"),
                layout,
                outcome,
            ));
        }
    }
    for (rate, hot) in [(50_000, false), (20_000, true)] {
        let layout = if hot { "one hot" } else { "many" };
        let outcome = run(&state, user.id, &user_name, targets(200, hot), Some(rate)).await;
        rows.push((format!("200, offering {rate}/s"), layout, outcome));
    }
    Ok(rows)
}

async fn run(
    state: &actix_web::web::Data<bosar_chat::state::AppState>,
    user_id: uuid::Uuid,
    user: &Arc<str>,
    targets: Vec<(Arc<str>, i64, actix::Addr<bosar_chat::actors::room::Room>)>,
    offered_rate: Option<u64>,
) -> Outcome {
    // Open loop: each sender sends on its own schedule, acks or not.
    let interval =
        offered_rate.map(|rate| Duration::from_secs_f64(targets.len() as f64 / rate as f64));
    let started = Instant::now();
    let measure_from = started + WARMUP;
    let until = measure_from + RUN;
    let mut tasks = Vec::new();
    for (room, room_id, addr) in targets {
        let committer = state.committer.clone();
        let user = user.clone();
        tasks.push(actix_rt::spawn(async move {
            let mut latency =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut committed = 0u64;
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            let mut n = 0u64;
            let mut next_send = Instant::now();
            loop {
                let now = Instant::now();
                if now >= until && in_flight.is_empty() {
                    break;
                }
                let may_send = match interval {
                    None => in_flight.len() < DEPTH,
                    Some(_) => now >= next_send,
                };
                if now < until && may_send {
                    if let Some(every) = interval {
                        next_send += every;
                    }
                    let (tx, rx) = oneshot::channel();
                    committer.submit(Pending {
                        room: room.clone(),
                        room_id,
                        room_addr: addr.clone(),
                        user_id,
                        user: user.clone(),
                        body: format!("benchmark message {n} with a body of ordinary length"),
                        client_msg_id: None,
                        reply: tx,
                    });
                    n += 1;
                    in_flight.push(async move { (now, rx.await) });
                    continue;
                }
                use futures_util::StreamExt;
                let answered = match interval {
                    Some(_) if now < until => {
                        let pause = tokio::time::sleep_until(next_send.into());
                        tokio::select! {
                            answer = in_flight.next(), if !in_flight.is_empty() => answer,
                            () = pause => continue,
                        }
                    }
                    _ => in_flight.next().await,
                };
                if let Some((sent, Ok(Ok(_)))) = answered
                    && sent >= measure_from
                    && sent < until
                {
                    committed += 1;
                    let micros = sent.elapsed().as_micros();
                    latency.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
                }
            }
            (committed, latency)
        }));
    }
    let mut total = 0;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for task in tasks {
        let (committed, h) = task.await.expect("sender");
        total += committed;
        latency.add(h).expect("merge");
    }
    Outcome {
        committed: total,
        elapsed: RUN,
        latency,
    }
}

fn database_url(admin: &str, name: &str) -> String {
    let base = admin.split('?').next().unwrap_or(admin);
    let (server, _) = base.rsplit_once('/').unwrap_or((base, ""));
    format!("{server}/{name}")
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query(sql).execute(&mut conn).await?;
    Ok(())
}
