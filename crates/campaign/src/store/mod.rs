//! Persistence of the campaign layer: SQLite embedded by default, PostgreSQL by URL
//! (docs/campaign.md, "Storage").
//!
//! One [`Store`] struct over sqlx's `Any` driver rather than a trait with one implementation per
//! database: every operation is written once, with `$N` placeholders that both SQLite and
//! PostgreSQL accept, and the few statements that must differ (row locking with
//! `FOR UPDATE SKIP LOCKED`, the write-transaction opener) are picked from [`Backend`] at run
//! time. Two implementations would mean every query written, reviewed and tested twice.
//! Queries are checked at run time (no compile-time macros, which need a live database at build).
//!
//! Transactions are short and batch-oriented: one per batch of recipients, log rows, claimed
//! rows or events. On SQLite one pooled connection writes (WAL lets the other connections read
//! meanwhile), so writes from this process never wait on each other's locks; several nodes need
//! PostgreSQL.

mod address;
mod codec;
mod deliveries;
mod events;
mod kpis;
mod logs;
mod logs_list;
mod recipients;
mod reports;
mod transactional;

pub use address::{ReleaseAudit, ReleaseFilter};
pub use deliveries::NewDelivery;
pub use events::{EventBatch, EventBatchChanges, EventCounters, EventKey};
pub use logs::{Claim, ClaimBatch, Claimed, Taken};
pub use logs_list::{LogCursor, LogFilter, LogPage};
pub use recipients::{ImportSession, ImportTarget, NewRecipient};
pub use reports::{MAX_STEPS, QualificationLine, ThroughputPoint, normalize};
pub use transactional::{
    CallOutcome, GroupError, NewCall, OutboxState, TxCall, TxFilter, TxTemplate, TxVersion,
};

use sqlx::AnyConnection;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlSafeStr, Transaction};
use std::path::Path;
use std::time::Duration;

/// The SQLite file the store creates under the data directory.
pub const SQLITE_FILE: &str = "campaign.sqlite";

/// Parameters per multi-row statement. sqlx finds each SQLite parameter by its name, which
/// SQLite looks up in a list: a statement with thousands of parameters costs quadratically
/// (measured: half the insert time at 3,000). A few hundred keeps that cost small and the
/// statements few.
const MAX_PARAMS: usize = 640;

/// Rows per multi-row statement of `cols` parameters each.
const fn rows_per_statement(cols: usize) -> usize {
    MAX_PARAMS / cols
}

/// Bytes of bound values one PostgreSQL statement carries at most, counted as the wire carries
/// them ([`wire_len`]). sqlx 0.9.0 leaves Nagle's algorithm on: a message that TLS cuts into two
/// records (16 KiB of data each, one socket write each) has its second record wait for the
/// server's delayed ACK, 40 ms a statement (measured: the import ran at 4.8k rows/s, 4 ms a
/// statement without TLS). A statement that fits in one record never waits; the rest of the
/// record leaves room for the message headers (about 60 bytes).
const MAX_PG_BYTES: usize = 16 * 1024 - 512;

/// The bytes a bound value of `len` bytes takes in a PostgreSQL Bind message (a 4-byte length,
/// then the value; a NULL is the length alone).
const fn wire_len(len: usize) -> usize {
    4 + len
}

/// The largest `2^k` or `3 * 2^(k-1)` not above `n` (`n` > 0).
fn two_significant_bits(n: usize) -> usize {
    let top = 1 << n.ilog2();
    if top > 1 && n >= top + top / 2 {
        top + top / 2
    } else {
        top
    }
}

/// Splits `items`, each bound as `cols` parameters, into the runs bound by one statement each:
/// [`MAX_PARAMS`] parameters at most, and on PostgreSQL at most [`MAX_PG_BYTES`] of values as
/// `bytes` counts them for an item (more parameters a statement measured no faster there: the
/// server's work per row is the most of it). A run the
/// byte bound cuts short is cut to a length of two significant bits (a power of two, or three
/// times one: 48, 64, 96…), so that the statement texts, each prepared once per connection,
/// stay few while a run keeps at least three quarters of what fits; an item past the bound
/// goes alone.
fn statement_chunks<T>(
    backend: Backend,
    items: &[T],
    cols: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let max_rows = rows_per_statement(cols.max(1)).max(1);
    if backend == Backend::Sqlite {
        return items.chunks(max_rows).collect();
    }
    let mut out = Vec::with_capacity(items.len() / max_rows + 1);
    let mut rest = items;
    while !rest.is_empty() {
        let mut n = 0;
        let mut total = 0;
        for item in rest.iter().take(max_rows) {
            total += bytes(item);
            if n > 0 && total > MAX_PG_BYTES {
                break;
            }
            n += 1;
        }
        let cut_by_bytes = n < max_rows && n < rest.len();
        if cut_by_bytes {
            n = two_significant_bits(n);
        }
        let (run, tail) = rest.split_at(n);
        out.push(run);
        rest = tail;
    }
    out
}

/// The most rows one listing or claim returns.
pub const MAX_PAGE: u32 = 10_000;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database `conn` talks to.
    fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// What a SQLite commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` under WAL: a commit survives a crash of the process (`kill -9`)
    /// but the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous=FULL`: each commit is on disk before it returns, at a cost in write speed.
    Full,
}

/// How to open a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite only (PostgreSQL's durability is the server's `synchronous_commit`).
    pub durability: Durability,
    /// Connections in the pool (PostgreSQL), or readers beside the one writer (SQLite).
    pub max_connections: u32,
    /// How long a SQLite statement waits for a lock held by another process.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Normal,
            max_connections: 4,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL scheme {0:?}: use postgres://… (or no URL for SQLite)")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected value {value} in column {column}")]
    Corrupt { column: &'static str, value: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: i64 },
    #[error("a recipient list named {0:?} already exists")]
    ListExists(String),
    #[error("delivery {id} is {actual:?}, not {expected:?}")]
    StateConflict {
        id: i64,
        expected: Vec<crate::model::DeliveryState>,
        actual: crate::model::DeliveryState,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Call `index` of a batch reuses the idempotency key of call `id` with another payload.
    #[error("call {index}: idempotency key {key:?} was used by call {id} with another payload")]
    KeyConflict { index: usize, key: String, id: i64 },
}

/// The campaign database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Writes (one connection on SQLite).
    write: AnyPool,
    /// Reads (the same pool on PostgreSQL).
    read: AnyPool,
    backend: Backend,
}

type Tx = Transaction<'static, Any>;

impl Store {
    /// Opens the store the configuration names: PostgreSQL when `database_url` is a
    /// `postgres://` URL, else SQLite in `data_dir` ([`SQLITE_FILE`]). Applies the migrations.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        options: &StoreOptions,
    ) -> Result<Store, StoreError> {
        match database_url {
            None | Some("") => Store::open_sqlite(data_dir, options).await,
            Some(url) => Store::open_postgres(url, options).await,
        }
    }

    /// Opens (creating when absent) the SQLite database in `dir`.
    pub async fn open_sqlite(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            percent_encode_path(&dir.join(SQLITE_FILE).to_string_lossy())
        );
        let write = sqlite_pool(1, options).connect(&url).await?;
        migrator(Backend::Sqlite).run(&write).await?;
        let read = sqlite_pool(options.max_connections.max(1), options)
            .connect(&url)
            .await?;
        Ok(Store {
            write,
            read,
            backend: Backend::Sqlite,
        })
    }

    /// Connects to PostgreSQL at `url` (`postgres://` or `postgresql://`).
    pub async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let scheme = url.split("://").next().unwrap_or_default();
        if scheme != "postgres" && scheme != "postgresql" {
            // The scheme only: the rest of a URL may hold a password.
            return Err(StoreError::UnsupportedUrl(scheme.to_string()));
        }
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect(url)
            .await?;
        migrator(Backend::Postgres).run(&pool).await?;
        Ok(Store {
            write: pool.clone(),
            read: pool,
            backend: Backend::Postgres,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn marks(&self) -> Marks {
        Marks::of_backend(self.backend)
    }

    /// Waits for the connections to close (a checkpoint of the SQLite WAL happens then).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Starts a write transaction. SQLite's opener takes the write lock at once, so that a
    /// transaction that reads before it writes never fails to upgrade its lock when another
    /// process (a CLI next to the server) writes too.
    async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }
}

fn sqlite_pool(connections: u32, options: &StoreOptions) -> AnyPoolOptions {
    let synchronous = match options.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
         PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
        options.busy_timeout.as_millis()
    );
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn: &mut AnyConnection, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
}

fn migrator(backend: Backend) -> Migrator {
    let sqls = match backend {
        Backend::Sqlite => [
            include_str!("../../migrations/sqlite/0001_campaign.sql"),
            include_str!("../../migrations/sqlite/0002_transactional.sql"),
            include_str!("../../migrations/sqlite/0003_qualification_counts.sql"),
        ],
        Backend::Postgres => [
            include_str!("../../migrations/postgres/0001_campaign.sql"),
            include_str!("../../migrations/postgres/0002_transactional.sql"),
            include_str!("../../migrations/postgres/0003_qualification_counts.sql"),
        ],
    };
    let names = ["campaign", "transactional", "qualification_counts"];
    Migrator::with_migrations(
        sqls.into_iter()
            .zip(names)
            .zip(1..)
            .map(|((sql, name), version)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Percent-encodes what a URL path cannot hold as is (`?`, `#`, `%`, spaces, non-ASCII).
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a generated statement marks its parameters. PostgreSQL needs `$N`; on SQLite a statement
/// made only of anonymous `?` spares sqlx a lookup of every parameter by name, which SQLite does
/// in a list: with numbered marks a statement of hundreds of parameters spent most of its time
/// there (measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marks {
    Numbered,
    Anonymous,
}

impl Marks {
    fn of_backend(backend: Backend) -> Marks {
        match backend {
            Backend::Sqlite => Marks::Anonymous,
            Backend::Postgres => Marks::Numbered,
        }
    }

    fn of(conn: &AnyConnection) -> Marks {
        Marks::of_backend(Backend::of(conn))
    }

    /// The mark of parameter `n` (1-based, in order of appearance).
    fn mark(self, n: usize) -> String {
        match self {
            Marks::Numbered => format!("${n}"),
            Marks::Anonymous => "?".into(),
        }
    }
}

/// `($1,$2,$3),($4,$5,$6)…` (or `?` marks): `rows` tuples of `cols` parameters, the only
/// parameters of their statement.
fn values_list(m: Marks, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push(',');
            }
            out.push_str(&m.mark(1 + r * cols + c));
        }
        out.push(')');
    }
    out
}

/// The marks of an `IN (…)` list of `n` parameters starting at parameter `first`.
fn in_list(m: Marks, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| m.mark(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// A value to bind to a query built at run time.
enum Param {
    Int(i64),
    Text(String),
}

fn bind_params<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    params: &[Param],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for p in params {
        q = match p {
            Param::Int(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
        };
    }
    q
}

/// The text placeholder `$n` for the next parameter, after pushing it.
fn push_param(params: &mut Vec<Param>, p: Param) -> String {
    params.push(p);
    format!("${}", params.len())
}

fn check_limit(limit: u32) -> Result<i64, StoreError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(StoreError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, not {limit}"
        )));
    }
    Ok(i64::from(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_list_numbers_placeholders_row_by_row() {
        assert_eq!(values_list(Marks::Numbered, 2, 2), "($1,$2),($3,$4)");
        assert_eq!(values_list(Marks::Anonymous, 2, 1), "(?),(?)");
        assert_eq!(in_list(Marks::Numbered, 2, 3), "$2,$3,$4");
    }

    #[test]
    fn postgres_statements_stay_under_the_byte_bound_in_power_of_two_runs() {
        let items = vec![1000_usize; 100];
        let lens = |b| -> Vec<usize> {
            statement_chunks(b, &items, 16, |n| *n)
                .iter()
                .map(|c| c.len())
                .collect()
        };
        assert_eq!(lens(Backend::Sqlite), [40, 40, 20]);
        // 15 of 1,000 bytes fit in 15.5 KiB: cut to 12; the last 4 fit as they are.
        let mut expected = vec![12; 8];
        expected.push(4);
        assert_eq!(lens(Backend::Postgres), expected);
        assert_eq!(
            [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 63, 64, 95, 96, 100].map(two_significant_bits),
            [1, 2, 3, 4, 4, 6, 6, 8, 8, 12, 48, 64, 64, 96, 96]
        );
        let small = vec![10_usize; 100];
        let runs = statement_chunks(Backend::Postgres, &small, 16, |n| *n);
        assert_eq!(
            runs.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [40, 40, 20]
        );
        let huge = vec![MAX_PG_BYTES * 2; 3];
        assert_eq!(
            statement_chunks(Backend::Postgres, &huge, 16, |n| *n).len(),
            3
        );
    }

    #[test]
    fn paths_with_url_syntax_are_encoded() {
        assert_eq!(percent_encode_path("/a b/c?d#e%"), "/a%20b/c%3Fd%23e%25");
    }
}
