//! Search and indexing benchmark against a real PostgreSQL with pgvector.
//!
//! ```sh
//! eval "$(scripts/dev-services env)"
//! cargo bench --bench search -- --messages 100000
//! cargo bench --bench search -- --messages 1000000 --queries 300
//! ```
//!
//! It creates its own database `bosar_bench_search` on the server of `DATABASE_URL` (dropped at
//! the end unless `--keep`), migrates it, and then:
//! 1. loads `--messages` messages, embedded with the `hash` embedder, without a search index:
//!    10 big rooms holding half of them and 500 small rooms sharing the other half;
//! 2. times room-filtered searches (the service's own query) without an index: exact results;
//! 3. times the indexer (the service's own) draining a backlog, and keeping up with a steady
//!    5,000 new messages per second;
//! 4. builds the IVFFlat index with the service's own rebuild (timed), times the same searches
//!    probing several fractions of its lists, with recall@10 against the exact results, prints
//!    EXPLAIN ANALYZE for a big and a small room, and times the indexer again;
//! 5. unless `--skip-hnsw`, replaces it with an HNSW index for comparison (build time, search
//!    latency, recall, plans).
//!
//! Results are printed as Markdown for docs/benchmarks.md.

#![allow(
    clippy::print_stdout,
    reason = "the printed report is what this program is for"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bosar_chat::config::DatabaseConfig;
use bosar_chat::embed::hash::{HashEmbedder, embed_one};
use bosar_chat::embed::indexer::{self, IndexerMetrics, IndexerOptions};
use bosar_chat::embed::recluster::ReclusterOptions;
use bosar_chat::metrics::Metrics;
use bosar_chat::store::search::Tuning;
use bosar_chat::store::{DbPool, migrate, pool, search, vector_index};
use diesel::sql_types::{Array, BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

const DB_NAME: &str = "bosar_bench_search";
const BIG_ROOMS: i64 = 10;
const SMALL_ROOMS: i64 = 500;
const LOAD_BATCH: usize = 2000;

struct Args {
    messages: i64,
    queries: usize,
    keep: bool,
    skip_indexer: bool,
    skip_hnsw: bool,
    /// Messages per IVFFlat list; the service's default when `None`.
    rows_per_list: Option<i64>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        messages: 100_000,
        queries: 200,
        keep: false,
        skip_indexer: false,
        skip_hnsw: false,
        rows_per_list: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => args.messages = it.next().context("--messages N")?.parse()?,
            "--queries" => args.queries = it.next().context("--queries N")?.parse()?,
            "--keep" => args.keep = true,
            "--skip-indexer" => args.skip_indexer = true,
            "--skip-hnsw" => args.skip_hnsw = true,
            "--rows-per-list" => {
                args.rows_per_list = Some(it.next().context("--rows-per-list N")?.parse()?);
            }
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// A small deterministic generator (xorshift64*), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A 4,000-word vocabulary of made-up words, used with a skewed (Zipf-like) frequency.
struct Words(Vec<String>);

impl Words {
    fn new() -> Self {
        const SYLLABLES: [&str; 20] = [
            "ka", "lo", "mi", "ren", "tos", "vel", "an", "dor", "fi", "gus", "ha", "jun", "ke",
            "lim", "no", "pra", "qui", "sa", "tu", "zen",
        ];
        let mut rng = Rng(7);
        let words = (0..4000)
            .map(|_| {
                let n = 1 + rng.below(3);
                (0..n)
                    .map(|_| SYLLABLES[rng.below(20) as usize])
                    .collect::<String>()
            })
            .collect();
        Self(words)
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let u = (rng.below(1_000_000) as f64) / 1_000_000.0;
        let i = ((self.0.len() as f64) * u.powi(3)) as usize;
        &self.0[i.min(self.0.len() - 1)]
    }

    fn sentence(&self, rng: &mut Rng, words: u64) -> String {
        (0..words)
            .map(|_| self.pick(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn admin_url() -> anyhow::Result<String> {
    std::env::var("DATABASE_URL")
        .context("DATABASE_URL: run `eval \"$(scripts/dev-services env)\"`")
}

fn database_url(admin: &str, name: &str) -> String {
    let (server, _) = admin.rsplit_once('/').unwrap_or((admin, ""));
    format!("{server}/{name}")
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<()> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .with_context(|| sql.to_owned())?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    actix_rt::System::new().block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let admin = admin_url()?;
    let url = database_url(&admin, DB_NAME);
    let mut admin_conn = AsyncPgConnection::establish(&admin).await?;
    exec(
        &mut admin_conn,
        &format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"),
    )
    .await?;
    exec(&mut admin_conn, &format!("CREATE DATABASE {DB_NAME}")).await?;
    migrate::run_pending(&DatabaseConfig::for_url(&url)).await?;
    let result = bench(&args, &url).await;
    if !args.keep {
        exec(
            &mut admin_conn,
            &format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"),
        )
        .await?;
    }
    result
}

async fn bench(args: &Args, url: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    let words = Words::new();
    println!(
        "# Search and indexing benchmark: {} messages\n",
        args.messages
    );
    let rooms = load(&mut conn, &words, args.messages).await?;

    let pool = pool::build(&DatabaseConfig::for_url(url))?;
    let queries = make_queries(&words, &rooms, args.queries);
    println!("## Without an index (exact search)\n");
    let every_room_exact = Tuning {
        exact_up_to: i64::MAX,
        ..Tuning::default()
    };
    let exact = measure(&pool, &queries, every_room_exact).await?;
    explain(&mut conn, &queries, &[], false).await?;
    exec(&mut conn, "CREATE SEQUENCE bench_seq").await?;
    if !args.skip_indexer {
        indexer_throughput(&mut conn, url, &words, "no index").await?;
        // Its writes would otherwise wake autovacuum in the middle of the timings below.
        exec(&mut conn, "VACUUM ANALYZE messages").await?;
    }

    println!("## The service's IVFFlat index\n");
    let rows = vector_index::embedded_rows(&mut conn).await?;
    let mut options = ReclusterOptions::default();
    if let Some(rows_per_list) = args.rows_per_list {
        options.rows_per_list = rows_per_list;
    }
    let lists = vector_index::lists_for(rows, options.min_rows, options.rows_per_list);
    let started = Instant::now();
    vector_index::rebuild(&mut conn, lists).await?;
    println!(
        "Built by the service's rebuild (`CREATE INDEX CONCURRENTLY`, {lists} lists for {rows} embedded messages): {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    exec(&mut conn, "ANALYZE messages").await?;
    for fraction in PROBE_FRACTIONS {
        // Every room may go through the index here, to show the index itself.
        let tuning = Tuning {
            exact_up_to: 0,
            probe_fraction: fraction,
        };
        let probes = ((lists as f64) * fraction).ceil().max(1.0);
        let default = if fraction == Tuning::default().probe_fraction {
            " (the service's default)"
        } else {
            ""
        };
        println!(
            "### Probing {:.2} % of the lists: {probes} of {lists}{default}\n",
            fraction * 100.0
        );
        let approximate = measure(&pool, &queries, tuning).await?;
        recall(&exact, &approximate, &queries);
    }
    println!(
        "### The service's default: rooms of up to {} messages exact, bigger ones through the index\n",
        Tuning::default().exact_up_to
    );
    let approximate = measure(&pool, &queries, Tuning::default()).await?;
    recall(&exact, &approximate, &queries);
    let probes = ((lists as f64) * Tuning::default().probe_fraction)
        .ceil()
        .max(1.0);
    explain(
        &mut conn,
        &queries,
        &[
            "SET LOCAL ivfflat.iterative_scan = relaxed_order".to_owned(),
            format!("SET LOCAL ivfflat.probes = {probes}"),
        ],
        true,
    )
    .await?;
    if !args.skip_indexer {
        indexer_throughput(&mut conn, url, &words, "IVFFlat index in place").await?;
    }
    if args.skip_hnsw {
        return Ok(());
    }

    println!("## For comparison: an HNSW index\n");
    exec(&mut conn, &format!("DROP INDEX {}", vector_index::INDEX)).await?;
    exec(&mut conn, "SET maintenance_work_mem = '6GB'").await?;
    exec(&mut conn, "SET max_parallel_maintenance_workers = 2").await?;
    let started = Instant::now();
    exec(
        &mut conn,
        &format!(
            "CREATE INDEX messages_embedding_hnsw_idx ON messages
             USING hnsw (({}) halfvec_l2_ops)",
            vector_index::INDEXED
        ),
    )
    .await?;
    println!(
        "CREATE INDEX (HNSW over the same search keys, m=16, ef_construction=64, maintenance_work_mem=6GB, 2 parallel workers): {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    exec(&mut conn, "ANALYZE messages").await?;
    // HNSW's own settings, for every new session of a fresh pool.
    for setting in HNSW_SETTINGS {
        exec(
            &mut conn,
            &format!("ALTER DATABASE {DB_NAME} SET {setting}"),
        )
        .await?;
    }
    let pool = pool::build(&DatabaseConfig::for_url(url))?;
    let through_the_index = Tuning {
        exact_up_to: 0,
        ..Tuning::default()
    };
    let approximate = measure(&pool, &queries, through_the_index).await?;
    recall(&exact, &approximate, &queries);
    let local: Vec<String> = HNSW_SETTINGS
        .iter()
        .map(|s| format!("SET LOCAL {s}"))
        .collect();
    explain(&mut conn, &queries, &local, true).await?;
    Ok(())
}

/// The probe fractions compared; the service's default is among them.
const PROBE_FRACTIONS: [f64; 5] = [0.005, 0.0075, 0.01, 0.02, 0.032];

/// HNSW search settings for the comparison: the iterative scan (so the room filter still gets
/// `limit` hits) and pgvector's defaults otherwise.
const HNSW_SETTINGS: [&str; 3] = [
    "hnsw.iterative_scan = relaxed_order",
    "hnsw.ef_search = 40",
    "hnsw.max_scan_tuples = 100000",
];

/// Room ids and sizes: (id, messages, big?).
struct Rooms(Vec<(i64, i64, bool)>);

/// Loads users, rooms and `total` embedded messages; returns the rooms.
async fn load(conn: &mut AsyncPgConnection, words: &Words, total: i64) -> anyhow::Result<Rooms> {
    exec(conn, "INSERT INTO users (username) VALUES ('bench')").await?;
    exec(
        conn,
        &format!(
            "INSERT INTO rooms (name, owner_id)
             SELECT 'big-' || g, (SELECT id FROM users) FROM generate_series(1, {BIG_ROOMS}) g
             UNION ALL
             SELECT 'small-' || g, (SELECT id FROM users) FROM generate_series(1, {SMALL_ROOMS}) g
             UNION ALL
             SELECT 'firehose', (SELECT id FROM users)"
        ),
    )
    .await?;
    // Loading without the search index; the phases below build the indexes they compare.
    exec(conn, &format!("DROP INDEX {}", vector_index::INDEX)).await?;
    let per_big = total / 2 / BIG_ROOMS;
    let per_small = (total - per_big * BIG_ROOMS) / SMALL_ROOMS;
    let mut rooms = Vec::new();
    for id in 1..=BIG_ROOMS {
        rooms.push((id, per_big, true));
    }
    for id in BIG_ROOMS + 1..=BIG_ROOMS + SMALL_ROOMS {
        rooms.push((id, per_small, false));
    }
    // Messages interleave rooms as live traffic would: each batch takes the next seqs of rooms
    // picked in proportion to their size.
    let mut plan: Vec<i64> = rooms
        .iter()
        .flat_map(|&(id, n, _)| std::iter::repeat_n(id, n as usize))
        .collect();
    let mut rng = Rng(42);
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut next_seq = vec![0i64; rooms.len() + 1];
    let started = Instant::now();
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    for (chunk_no, chunk) in plan.chunks(LOAD_BATCH).enumerate() {
        let mut seqs = Vec::with_capacity(chunk.len());
        let mut bodies = Vec::with_capacity(chunk.len());
        for &room in chunk {
            next_seq[room as usize] += 1;
            seqs.push(next_seq[room as usize]);
            let n = 4 + rng.below(12);
            bodies.push(words.sentence(&mut rng, n));
        }
        let vectors: Vec<pgvector::Vector> = bodies
            .iter()
            .map(|b| pgvector::Vector::from(embed_one(b)))
            .collect();
        let ids: Vec<uuid::Uuid> = (0..chunk.len()).map(|_| uuid::Uuid::now_v7()).collect();
        let offset = (chunk_no * LOAD_BATCH) as i64;
        diesel::sql_query(
            "INSERT INTO messages (id, room_id, seq, user_id, body, created_at, embedding)
             SELECT t.id, t.room_id, t.seq, (SELECT id FROM users), t.body,
                    $6::timestamptz + (($7 + t.ord) * interval '1 millisecond'), t.embedding
             FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::vector[])
                  WITH ORDINALITY AS t(id, room_id, seq, body, embedding, ord)",
        )
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<BigInt>, _>(chunk.to_vec())
        .bind::<Array<BigInt>, _>(seqs)
        .bind::<Array<Text>, _>(bodies)
        .bind::<Array<pgvector::sql_types::Vector>, _>(vectors)
        .bind::<diesel::sql_types::Timestamptz, _>(base)
        .bind::<BigInt, _>(offset)
        .execute(conn)
        .await
        .context("loading messages")?;
    }
    exec(
        conn,
        "UPDATE rooms r SET last_seq = c.n FROM (SELECT room_id, max(seq) AS n FROM messages GROUP BY room_id) c WHERE c.room_id = r.id",
    )
    .await?;
    exec(conn, "VACUUM ANALYZE messages").await?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "Loaded {} messages (embedded with `hash` in the loader) in {elapsed:.1} s: {} big rooms of {per_big}, {} small rooms of {per_small}.\n",
        plan.len(),
        BIG_ROOMS,
        SMALL_ROOMS
    );
    Ok(Rooms(rooms))
}

struct Query {
    room: i64,
    big: bool,
    room_size: i64,
    text: String,
}

fn make_queries(words: &Words, rooms: &Rooms, n: usize) -> Vec<Query> {
    let mut rng = Rng(99);
    (0..n)
        .map(|i| {
            // Half the queries go to big rooms, half to small ones.
            let big = i % 2 == 0;
            let candidates: Vec<_> = rooms.0.iter().filter(|r| r.2 == big).collect();
            let room = candidates[rng.below(candidates.len() as u64) as usize];
            let len = 1 + rng.below(3);
            Query {
                room: room.0,
                big,
                room_size: room.1,
                text: words.sentence(&mut rng, len),
            }
        })
        .collect()
}

/// Runs every query through the service's own search (embedding included) and prints the
/// latency percentiles per room kind; returns each query's hit ids.
async fn measure(pool: &DbPool, queries: &[Query], tuning: Tuning) -> anyhow::Result<Vec<Hits>> {
    let room: Arc<str> = Arc::from("bench");
    // Warm-up: the first queries pay for connections and cold pages.
    for q in queries.iter().take(20) {
        search::nearest_tuned(pool, &room, q.room, embed_one(&q.text), 10, tuning).await?;
    }
    let mut results = Vec::with_capacity(queries.len());
    let mut big = Vec::new();
    let mut small = Vec::new();
    let mut short = 0;
    for q in queries {
        let started = Instant::now();
        let hits =
            search::nearest_tuned(pool, &room, q.room, embed_one(&q.text), 10, tuning).await?;
        let took = started.elapsed();
        if (hits.len() as i64) < q.room_size.min(10) {
            short += 1;
        }
        if q.big {
            big.push(took)
        } else {
            small.push(took)
        }
        results.push(Hits {
            ids: hits.iter().map(|h| h.message.id).collect(),
            score: hits.iter().map(|h| h.score).sum(),
        });
    }
    println!("| rooms | queries | p50 | p95 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, mut times) in [
        ("big (5% of messages each)", big),
        ("small (0.1% each)", small),
    ] {
        times.sort_unstable();
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            times.len(),
            ms(p(0.50)),
            ms(p(0.95)),
            ms(p(0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
        );
    }
    println!("\nQueries that returned fewer than min(10, room size) hits: {short}\n");
    Ok(results)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One query's hits: their ids, and the sum of their scores.
struct Hits {
    ids: Vec<uuid::Uuid>,
    score: f64,
}

/// Prints, per room kind, recall@10 (the share of the exact top 10 found) and how similar the
/// hits found are to the query compared with the exact top 10 (the ratio of their summed scores):
/// with many near-ties, a missed hit is often replaced by one almost as close.
fn recall(exact: &[Hits], approximate: &[Hits], queries: &[Query]) {
    for big in [true, false] {
        let (mut found, mut total) = (0usize, 0usize);
        let (mut score, mut best) = (0.0, 0.0);
        for ((e, a), q) in exact.iter().zip(approximate).zip(queries) {
            if q.big != big {
                continue;
            }
            total += e.ids.len();
            found += e.ids.iter().filter(|id| a.ids.contains(id)).count();
            score += a.score;
            best += e.score;
        }
        let kind = if big { "big" } else { "small" };
        println!(
            "Against exact search, {kind} rooms: recall@10 {:.3}, summed similarity of the hits {:.3} of the exact top 10's",
            found as f64 / total.max(1) as f64,
            score / f64::max(best, f64::MIN_POSITIVE)
        );
    }
    println!();
}

/// Prints EXPLAIN ANALYZE of the service's query for a big and a small room: exact (ordered by
/// the full-precision distance) unless `indexed` and the room is bigger than the service's
/// `exact_up_to`, then ordered by the search key.
async fn explain(
    conn: &mut AsyncPgConnection,
    queries: &[Query],
    settings: &[String],
    indexed: bool,
) -> anyhow::Result<()> {
    for big in [true, false] {
        let Some(q) = queries.iter().find(|q| q.big == big) else {
            continue;
        };
        let vector = format!("{:?}", embed_one(&q.text));
        exec(conn, "BEGIN").await?;
        exec(conn, "SET LOCAL jit = off").await?;
        for setting in settings {
            exec(conn, setting).await?;
        }
        let order = if indexed && q.room_size > Tuning::default().exact_up_to {
            format!(
                "{} <-> message_search_key({}, '{vector}')::halfvec(400)",
                vector_index::INDEXED,
                q.room
            )
        } else {
            "distance".to_owned()
        };
        let lines: Vec<Line> = diesel::sql_query(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
             SELECT id, embedding <=> '{vector}' AS distance FROM messages
             WHERE room_id = {} AND embedding IS NOT NULL
             ORDER BY {order} LIMIT 10",
            q.room
        ))
        .load(conn)
        .await?;
        exec(conn, "COMMIT").await?;
        let kind = if big { "a big room" } else { "a small room" };
        println!("EXPLAIN ANALYZE, {kind}:\n\n```");
        for line in lines {
            // The 384 numbers of the query vector say nothing: show them as a parameter.
            let line = shorten_key(&line.line);
            let text = match (line.find("'["), line.find("]'::")) {
                (Some(a), Some(b)) => {
                    // Drop the cast too: a type name and its dimensions, `halfvec(400)`.
                    let rest = &line[b + 4..];
                    let name_end = rest
                        .find(|c: char| !c.is_ascii_alphanumeric())
                        .unwrap_or(rest.len());
                    let type_end = match rest[name_end..].strip_prefix('(') {
                        Some(dims) => dims.find(')').map_or(name_end, |i| name_end + i + 2),
                        None => name_end,
                    };
                    format!("{}$query{}", &line[..a], &rest[type_end..])
                }
                _ => line,
            };
            println!("{text}");
        }
        println!("```\n");
    }
    Ok(())
}

/// Shows the planner's inlined search key as the function it came from.
fn shorten_key(line: &str) -> String {
    const TAIL: &str = "])::halfvec(16) || l2_normalize((embedding)::halfvec(384))";
    match (line.find("(ARRAY["), line.find(TAIL)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}message_search_key(room_id, embedding){}",
            &line[..a],
            &line[b + TAIL.len()..]
        ),
        _ => line.to_owned(),
    }
}

/// The room the indexer phases write to, so that the searched rooms stay as loaded and the
/// recall against exact search stays valid.
const FIREHOSE_ROOM: i64 = BIG_ROOMS + SMALL_ROOMS + 1;

/// Inserts `n` messages without embeddings into the firehose room, in one statement.
async fn insert_unembedded(
    conn: &mut AsyncPgConnection,
    words: &Words,
    rng: &mut Rng,
    n: usize,
) -> anyhow::Result<()> {
    let room_ids: Vec<i64> = vec![FIREHOSE_ROOM; n];
    let bodies: Vec<String> = (0..n)
        .map(|_| {
            let k = 4 + rng.below(12);
            words.sentence(rng, k)
        })
        .collect();
    // Seqs far above the loaded ones keep (room_id, seq) unique without touching rooms.
    diesel::sql_query(
        "INSERT INTO messages (id, room_id, seq, user_id, body, created_at)
         SELECT gen_random_uuid(), t.room_id,
                1000000000 + nextval('bench_seq'), (SELECT id FROM users), t.body, clock_timestamp()
         FROM unnest($1::bigint[], $2::text[]) AS t(room_id, body)",
    )
    .bind::<Array<BigInt>, _>(room_ids)
    .bind::<Array<Text>, _>(bodies)
    .execute(conn)
    .await
    .context("inserting unembedded messages")?;
    Ok(())
}

async fn backlog(conn: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    count(
        conn,
        "SELECT count(*) AS n FROM messages WHERE embedding IS NULL",
    )
    .await
}

fn start_indexers(url: &str, n: usize) -> anyhow::Result<Vec<indexer::IndexerHandle>> {
    (0..n)
        .map(|i| {
            let metrics = Metrics::new(&format!("bench-{i}"))?;
            Ok(indexer::spawn(
                url,
                Arc::new(HashEmbedder),
                IndexerMetrics::register(&metrics)?,
                IndexerOptions::default(),
            ))
        })
        .collect()
}

async fn indexer_throughput(
    conn: &mut AsyncPgConnection,
    url: &str,
    words: &Words,
    label: &str,
) -> anyhow::Result<()> {
    println!("## Indexer throughput (`hash`, {label})\n");
    let mut rng = Rng(1234);
    const BACKLOG: usize = 10_000;
    println!("| indexers | backlog drained | time | messages/s |");
    println!("| ---: | ---: | ---: | ---: |");
    for indexers in [1, 2] {
        insert_unembedded(conn, words, &mut rng, BACKLOG).await?;
        let started = Instant::now();
        let running = start_indexers(url, indexers)?;
        while backlog(conn).await? > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed().as_secs_f64();
        drop(running);
        println!(
            "| {indexers} | {BACKLOG} | {took:.2} s | {:.0} |",
            BACKLOG as f64 / took
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A steady 5,000 messages per second (500 every 100 ms) for 10 s, one indexer.
    let running = start_indexers(url, 1)?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut inserted = 0;
    while started.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        insert_unembedded(conn, words, &mut rng, 500).await?;
        inserted += 500;
        if inserted % 5000 == 0 {
            samples.push(backlog(conn).await?);
        }
    }
    let rate = inserted as f64 / started.elapsed().as_secs_f64();
    drop(running);
    println!(
        "\nSteady load, one indexer: {inserted} messages inserted at {rate:.0}/s over 10 s; backlog once a second: {samples:?}\n"
    );
    // Whatever is left is embedded now (without the index it takes seconds), so the next phase
    // starts clean; with the index, the rest is left to the database's drop.
    let leftover = backlog(conn).await?;
    if leftover > 0 && label.starts_with("no ") {
        let running = start_indexers(url, 2)?;
        while backlog(conn).await? > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(running);
    }
    Ok(())
}
