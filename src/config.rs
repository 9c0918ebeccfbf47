//! Configuration from the environment: every variable the service reads, its default and its
//! meaning, in one place. A missing required value or a malformed one is a [`ConfigError`] whose
//! `Display` is the single line the process prints before exiting non-zero.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A configuration problem, named by its variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration error: {0} is required but not set")]
    Missing(&'static str),
    #[error("configuration error: {key}={value:?} is invalid: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// Everything `bosar-chat serve` needs.
#[derive(Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub embeddings: EmbeddingsConfig,
    pub limits: Limits,
    pub ws: WsConfig,
    pub log: LogConfig,
    /// `NODE_ID`: this instance's id, in logs, metrics and `/api`. Default: host name + suffix.
    pub node_id: String,
    /// `RUN_MIGRATIONS` (default `true`): `serve` applies pending migrations before listening.
    pub run_migrations: bool,
    /// `SHUTDOWN_GRACE_SECS` (default 25): drain time after SIGTERM.
    pub shutdown_grace: Duration,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `HOST` (default `0.0.0.0`): bind address.
    pub host: IpAddr,
    /// `PORT` (default 3001): HTTP and WebSocket port; 0 picks a free one (tests).
    pub port: u16,
    /// `HTTP_WORKERS` (default: one per CPU): actix-web worker threads.
    pub workers: usize,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL` (required): PostgreSQL with the `vector` extension available.
    pub url: String,
    /// `DATABASE_POOL_SIZE` (default 16): deadpool size.
    pub pool_size: usize,
    /// `DATABASE_CA_FILE` (optional): extra PEM roots trusted for `sslmode=verify-ca` and
    /// `verify-full` (for RDS, Amazon's RDS CA bundle).
    pub ca_file: Option<std::path::PathBuf>,
    /// `COMMIT_LANES`: group-commit lanes of this node, each with its own database connection
    /// and one batch in flight. More lanes commit more in parallel; fewer make bigger batches,
    /// which costs the database less when several nodes write into the same rooms. The default
    /// follows the mode: 2 for a single node (`REDIS_URL` unset: its highest throughput), 1 in a
    /// cluster (lower latency and higher throughput where nodes share rooms; docs/benchmarks.md).
    pub commit_lanes: usize,
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `REDIS_URL`: unset = single-node mode (in-process fan-out); set = cluster mode. With
    /// `REDIS_SHARDED`, a comma-separated list of seed nodes is accepted too.
    pub url: Option<String>,
    /// `REDIS_SHARDED` (default `false`): sharded pub/sub through a Redis Cluster client.
    pub sharded: bool,
    /// `REDIS_KEY_PREFIX` (default `bosar`): prefix of every key and channel this service uses,
    /// so that several deployments (or parallel tests) can share one Redis.
    pub key_prefix: String,
    /// `PRESENCE_TTL_SECS` (default 15): a node whose heartbeat is older than this is dead and
    /// its users leave presence (heartbeats go every third of it).
    pub presence_ttl: Duration,
}

#[derive(Clone)]
pub struct AuthConfig {
    /// `JWT_SECRET` (required, at least 32 bytes): HS256 key.
    pub jwt_secret: Secret,
    /// `JWT_TTL_SECS` (default 86400): lifetime of tokens this service issues.
    pub jwt_ttl: Duration,
}

/// `EMBEDDINGS_PROVIDER` (default `hash`) and, for `openai`, `EMBEDDINGS_URL`,
/// `EMBEDDINGS_API_KEY` and `EMBEDDINGS_MODEL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbeddingsConfig {
    Hash,
    OpenAi {
        url: String,
        api_key: Option<Secret>,
        model: String,
    },
    Off,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// `MAX_BODY_BYTES` (default 4096): largest message body.
    pub max_body_bytes: usize,
    /// `MAX_FRAME_BYTES` (default 65536): largest WebSocket frame accepted.
    pub max_frame_bytes: usize,
    /// `SEARCH_EXACT_UP_TO` (default 5000): rooms with at most this many messages are searched
    /// exactly rather than through the vector index.
    pub search_exact_up_to: i64,
    /// `SEARCH_PROBE_PERCENT` (default 0.75): the share of the vector index's lists a search of
    /// a bigger room scans, in percent (more: better recall, slower).
    pub search_probe_percent: f64,
}

/// WebSocket timing and per-connection limits. The contract fixes the defaults; the variables
/// exist so tests and unusual deployments can change them.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// `WS_HEARTBEAT_MS` (default 25000): server ping interval, announced in `welcome`.
    pub heartbeat: Duration,
    /// `WS_IDLE_TIMEOUT_MS` (default 60000): a connection silent this long is closed.
    pub idle_timeout: Duration,
    /// `WS_AUTH_TIMEOUT_MS` (default 10000): time allowed for the `auth` frame.
    pub auth_timeout: Duration,
    /// `WS_OUTBOUND_BUDGET_BYTES` (default 1 MiB): queued-but-unwritten bytes before a reader
    /// is closed with 4008.
    pub outbound_budget: usize,
    /// `WS_MAX_ROOMS` (default 100): rooms one connection may join.
    pub max_rooms: usize,
    /// `WS_RATE_PER_SEC` (default 20) and `WS_RATE_BURST` (default 40): the message rate limit.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// `WS_MAX_ERRORS` (default 50) and `WS_MAX_RATE_LIMITED` (default 100): error frames, and
    /// rate-limited refusals, within `abuse_window` (10 s) before a 4029 close.
    pub max_errors: u32,
    pub max_rate_limited: u32,
    pub abuse_window: Duration,
}

impl WsConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let ms = |key, default| r.positive(key, default).map(Duration::from_millis);
        let count = |key, default: u32| {
            r.positive(key, u64::from(default))
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        Ok(Self {
            heartbeat: ms("WS_HEARTBEAT_MS", 25_000)?,
            idle_timeout: ms("WS_IDLE_TIMEOUT_MS", 60_000)?,
            auth_timeout: ms("WS_AUTH_TIMEOUT_MS", 10_000)?,
            outbound_budget: usize::try_from(r.positive("WS_OUTBOUND_BUDGET_BYTES", 1 << 20)?)
                .unwrap_or(usize::MAX),
            max_rooms: usize::try_from(r.positive("WS_MAX_ROOMS", 100)?).unwrap_or(100),
            rate_per_sec: count("WS_RATE_PER_SEC", 20)?,
            rate_burst: count("WS_RATE_BURST", 40)?,
            max_errors: count("WS_MAX_ERRORS", 50)?,
            max_rate_limited: count("WS_MAX_RATE_LIMITED", 100)?,
            abuse_window: Duration::from_secs(10),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `LOG_FORMAT` (default `json`): `json` or `pretty`; logs go to stdout.
    pub format: LogFormat,
    /// `RUST_LOG` (default `info`): log filter.
    pub filter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Reads typed values with defaults, naming the variable in every error.
struct Reader<'a, S: Source + ?Sized> {
    source: &'a S,
}

impl<S: Source + ?Sized> Reader<'_, S> {
    /// The value, or `None` when unset or blank.
    fn raw(&self, key: &str) -> Option<String> {
        self.source.get(key).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, key: &'static str) -> Result<String, ConfigError> {
        self.raw(key).ok_or(ConfigError::Missing(key))
    }

    fn parsed<T>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    key,
                    reason: e.to_string(),
                    value,
                }),
        }
    }

    fn bool(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(invalid(key, value, "expected true or false")),
            },
        }
    }

    /// A share in percent: above 0 and at most 100.
    fn percent(&self, key: &'static str, default: f64) -> Result<f64, ConfigError> {
        let value: f64 = self.parsed(key, default)?;
        if !(value > 0.0 && value <= 100.0) {
            return Err(invalid(
                key,
                value.to_string(),
                "must be above 0 and at most 100",
            ));
        }
        Ok(value)
    }

    fn positive(&self, key: &'static str, default: u64) -> Result<u64, ConfigError> {
        let value = self.parsed(key, default)?;
        if value == 0 {
            return Err(invalid(key, "0", "must be greater than zero"));
        }
        Ok(value)
    }
}

fn invalid(key: &'static str, value: impl Into<String>, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.into(),
        reason: reason.to_owned(),
    }
}

impl Config {
    /// Reads the whole configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        Ok(Self {
            http: HttpConfig::from_source(source)?,
            database: DatabaseConfig::from_source(source)?,
            redis: RedisConfig::from_source(source)?,
            auth: AuthConfig::from_source(source)?,
            embeddings: EmbeddingsConfig::from_source(source)?,
            limits: Limits::from_source(source)?,
            ws: WsConfig::from_source(source)?,
            log: LogConfig::from_source(source)?,
            node_id: match r.raw("NODE_ID") {
                Some(id) => validate_node_id(id)?,
                None => default_node_id(),
            },
            run_migrations: r.bool("RUN_MIGRATIONS", true)?,
            shutdown_grace: Duration::from_secs(r.parsed("SHUTDOWN_GRACE_SECS", 25)?),
        })
    }
}

impl HttpConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let default_workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            host: r.parsed("HOST", IpAddr::from([0, 0, 0, 0]))?,
            port: r.parsed("PORT", 3001)?,
            workers: usize::try_from(r.positive("HTTP_WORKERS", default_workers as u64)?)
                .unwrap_or(default_workers),
        })
    }
}

impl DatabaseConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let url = r.required("DATABASE_URL")?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "DATABASE_URL",
                redact_url(&url),
                "expected a postgres:// URL",
            ));
        }
        if let Err(reason) = crate::store::connect::split_ssl_mode(&url) {
            return Err(invalid("DATABASE_URL", redact_url(&url), &reason));
        }
        let ca_file = r.raw("DATABASE_CA_FILE").map(std::path::PathBuf::from);
        if let Some(path) = &ca_file
            && !path.is_file()
        {
            return Err(invalid(
                "DATABASE_CA_FILE",
                path.display().to_string(),
                "no such file",
            ));
        }
        let pool_size = r.positive("DATABASE_POOL_SIZE", 16)?;
        let default_lanes = if r.raw("REDIS_URL").is_some() { 1 } else { 2 };
        let commit_lanes = r.positive("COMMIT_LANES", default_lanes)?;
        Ok(Self {
            url,
            pool_size: usize::try_from(pool_size).unwrap_or(16),
            ca_file,
            commit_lanes: usize::try_from(commit_lanes).unwrap_or(2),
        })
    }

    /// A plain configuration for `url` (tools and tests).
    pub fn for_url(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pool_size: 4,
            ca_file: None,
            commit_lanes: 2,
        }
    }
}

impl RedisConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let url = r.raw("REDIS_URL");
        if let Some(url) = &url {
            for one in url.split(',') {
                let one = one.trim();
                if !(one.starts_with("redis://") || one.starts_with("rediss://")) {
                    return Err(invalid(
                        "REDIS_URL",
                        redact_url(one),
                        "expected a redis:// or rediss:// URL",
                    ));
                }
            }
        }
        let key_prefix = r.raw("REDIS_KEY_PREFIX").unwrap_or_else(|| "bosar".into());
        if key_prefix.contains(|c: char| c.is_whitespace() || c == '{' || c == '}') {
            return Err(invalid(
                "REDIS_KEY_PREFIX",
                key_prefix,
                "must not contain spaces or braces",
            ));
        }
        Ok(Self {
            url,
            sharded: r.bool("REDIS_SHARDED", false)?,
            key_prefix,
            presence_ttl: Duration::from_secs(r.positive("PRESENCE_TTL_SECS", 15)?),
        })
    }
}

impl AuthConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let secret = r.required("JWT_SECRET")?;
        if secret.len() < 32 {
            return Err(ConfigError::Invalid {
                key: "JWT_SECRET",
                value: "***".into(),
                reason: format!("must be at least 32 bytes, got {}", secret.len()),
            });
        }
        Ok(Self {
            jwt_secret: Secret::new(secret),
            jwt_ttl: Duration::from_secs(r.positive("JWT_TTL_SECS", 86_400)?),
        })
    }
}

impl EmbeddingsConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let provider = r
            .raw("EMBEDDINGS_PROVIDER")
            .unwrap_or_else(|| "hash".into());
        match provider.trim().to_ascii_lowercase().as_str() {
            "hash" => Ok(Self::Hash),
            "off" => Ok(Self::Off),
            "openai" => {
                let url = r.required("EMBEDDINGS_URL")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid("EMBEDDINGS_URL", url, "expected an http(s):// URL"));
                }
                Ok(Self::OpenAi {
                    url,
                    api_key: r.raw("EMBEDDINGS_API_KEY").map(Secret::new),
                    model: r
                        .raw("EMBEDDINGS_MODEL")
                        .unwrap_or_else(|| "text-embedding-3-small".into()),
                })
            }
            _ => Err(invalid(
                "EMBEDDINGS_PROVIDER",
                provider,
                "expected hash, openai or off",
            )),
        }
    }
}

impl Limits {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let max_body_bytes = r.positive("MAX_BODY_BYTES", 4096)?;
        let max_frame_bytes = r.positive("MAX_FRAME_BYTES", 65_536)?;
        if max_frame_bytes < max_body_bytes {
            return Err(invalid(
                "MAX_FRAME_BYTES",
                max_frame_bytes.to_string(),
                "must be at least MAX_BODY_BYTES",
            ));
        }
        Ok(Self {
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            max_frame_bytes: usize::try_from(max_frame_bytes).unwrap_or(usize::MAX),
            search_exact_up_to: r.parsed("SEARCH_EXACT_UP_TO", 5000)?,
            search_probe_percent: r.percent("SEARCH_PROBE_PERCENT", 0.75)?,
        })
    }
}

impl LogConfig {
    pub fn from_source<S: Source + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let format = match r.raw("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "expected json or pretty")),
        };
        let filter = r.raw("RUST_LOG").unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter) {
            return Err(invalid("RUST_LOG", filter, &e.to_string()));
        }
        Ok(Self { format, filter })
    }
}

fn validate_node_id(id: String) -> Result<String, ConfigError> {
    let ok = id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(id)
    } else {
        Err(invalid(
            "NODE_ID",
            id,
            "use at most 64 letters, digits and - _ . :",
        ))
    }
}

/// Host name plus a random suffix, so two containers on one host still differ.
fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(48)
        .collect();
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        map
    }

    fn error_of(pairs: &[(&str, &str)]) -> String {
        match Config::from_source(&env(pairs)) {
            Ok(_) => panic!("expected a configuration error for {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_source(&env(&[])).unwrap();
        assert_eq!(c.http.port, 3001);
        assert_eq!(c.http.host.to_string(), "0.0.0.0");
        assert_eq!(c.database.pool_size, 16);
        assert_eq!(c.database.commit_lanes, 2);
        assert_eq!(c.redis.url, None);
        assert!(!c.redis.sharded);
        assert_eq!(c.auth.jwt_ttl, Duration::from_secs(86_400));
        assert!(c.run_migrations);
        assert_eq!(c.embeddings, EmbeddingsConfig::Hash);
        assert_eq!(c.limits.max_body_bytes, 4096);
        assert_eq!(c.limits.max_frame_bytes, 65_536);
        assert_eq!(c.limits.search_exact_up_to, 5000);
        assert!((c.limits.search_probe_percent - 0.75).abs() < f64::EPSILON);
        assert_eq!(c.shutdown_grace, Duration::from_secs(25));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.filter, "info");
        assert!(!c.node_id.is_empty());
    }

    #[test]
    fn a_cluster_node_commits_through_one_lane_unless_told_otherwise() {
        let c = Config::from_source(&env(&[("REDIS_URL", "redis://127.0.0.1:6379")])).unwrap();
        assert_eq!(c.database.commit_lanes, 1);
        let c = Config::from_source(&env(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("COMMIT_LANES", "3"),
        ]))
        .unwrap();
        assert_eq!(c.database.commit_lanes, 3);
    }

    #[test]
    fn missing_required_values_are_named() {
        let mut e = env(&[]);
        e.remove("DATABASE_URL");
        assert_eq!(
            Config::from_source(&e).err(),
            Some(ConfigError::Missing("DATABASE_URL"))
        );
        let mut e = env(&[]);
        e.remove("JWT_SECRET");
        assert_eq!(
            Config::from_source(&e).err(),
            Some(ConfigError::Missing("JWT_SECRET"))
        );
    }

    #[test]
    fn malformed_values_are_refused_with_one_line() {
        for (key, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("HOST", "not-an-ip"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_POOL_SIZE", "0"),
            ("REDIS_URL", "http://x"),
            ("REDIS_SHARDED", "maybe"),
            ("JWT_SECRET", "short"),
            ("JWT_TTL_SECS", "-1"),
            ("RUN_MIGRATIONS", "2"),
            ("EMBEDDINGS_PROVIDER", "magic"),
            ("MAX_BODY_BYTES", "lots"),
            ("MAX_FRAME_BYTES", "100"),
            ("SEARCH_PROBE_PERCENT", "0"),
            ("SEARCH_PROBE_PERCENT", "101"),
            ("SEARCH_PROBE_PERCENT", "NaN"),
            ("SEARCH_PROBE_PERCENT", "some"),
            ("SHUTDOWN_GRACE_SECS", "soon"),
            ("LOG_FORMAT", "xml"),
            ("NODE_ID", "has spaces"),
        ] {
            let message = error_of(&[(key, value)]);
            assert!(message.contains(key), "{message} should name {key}");
            assert!(!message.contains('\n'), "{message} should be one line");
        }
    }

    #[test]
    fn secrets_never_reach_error_messages() {
        let message = error_of(&[("JWT_SECRET", "tiny-secret")]);
        assert!(!message.contains("tiny-secret"), "{message}");
        let message = error_of(&[("DATABASE_URL", "mysql://user:hunter2@h/db")]);
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn openai_embeddings_need_a_url() {
        assert!(error_of(&[("EMBEDDINGS_PROVIDER", "openai")]).contains("EMBEDDINGS_URL"));
        let c = Config::from_source(&env(&[
            ("EMBEDDINGS_PROVIDER", "openai"),
            ("EMBEDDINGS_URL", "http://127.0.0.1:9/v1/embeddings"),
        ]))
        .unwrap();
        assert!(matches!(c.embeddings, EmbeddingsConfig::OpenAi { .. }));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://bosar:secret@127.0.0.1:5432/db"),
            "postgres://bosar:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
