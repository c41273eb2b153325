//! Recipients from CSV (docs/campaign.md, "Importing recipients").
//!
//! The header row names the attributes; one column (default `email`, matched
//! case-insensitively) is the address. Two kinds of problems:
//!
//! * **Bad rows** — a row with more or fewer fields than the header, or an empty e-mail — are
//!   skipped, counted and listed with their line numbers (up to a cap) in the [`ImportReport`];
//!   the rest of the file is imported.
//! * **Fatal errors** — the file is not UTF-8, a record is longer than the line limit, the header
//!   is unusable, the file cannot be read, the database fails — stop the import and discard
//!   every row it wrote: rows go to a staging list that only a complete import commits.
//!
//! A record over the limit is never held whole: the reader under the CSV parser refuses to read
//! further than the limit (plus the parser's buffer) past the start of the current record, so
//! memory stays bounded whatever the file holds (a 1 GB line costs the limit, not 1 GB).

use crate::model::{ListId, UnixMillis};
use crate::store::{ImportSession, ImportTarget, NewRecipient, Store, StoreError};
use cartero_clock::Clock;
use serde::Serialize;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The CSV parser's read buffer.
const BUFFER: usize = 64 * 1024;

/// How to read the file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The header of the e-mail column, matched case-insensitively.
    pub email_column: String,
    /// The longest record (usually a line) accepted, in bytes.
    pub max_line_bytes: usize,
    /// Rows written per transaction.
    pub batch_rows: usize,
    /// How many bad rows the report lists (all are counted).
    pub max_reported: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            email_column: "email".into(),
            max_line_bytes: 64 * 1024,
            batch_rows: 5_000,
            max_reported: 1_000,
        }
    }
}

/// Why a row was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum RowProblem {
    /// Not as many fields as the header has columns.
    Ragged { expected: usize, found: usize },
    /// The e-mail field is empty (or only spaces).
    EmptyEmail,
}

/// A skipped row: the line it starts on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BadRow {
    pub line: u64,
    #[serde(flatten)]
    pub problem: RowProblem,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub list: ListId,
    /// Data rows read (header excluded).
    pub rows_read: u64,
    pub imported: u64,
    /// Every skipped row is counted here…
    pub bad_rows: u64,
    /// …and the first [`ImportOptions::max_reported`] are listed.
    pub bad: Vec<BadRow>,
}

/// Why an import stopped (nothing of it was kept).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: the file is not valid UTF-8 (convert it to UTF-8 and import again)")]
    Encoding { line: u64 },
    #[error("line {line}: a record longer than the limit of {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    #[error("the file is empty: a header row is needed")]
    Empty,
    #[error("the header has no {0:?} column")]
    NoEmailColumn(String),
    #[error("the header has an unnamed column (column {0})")]
    UnnamedColumn(usize),
    #[error("the header names column {0:?} twice")]
    DuplicateColumn(String),
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports a CSV file into `target`; `progress` hears the number of rows read so far after
/// each batch. Reading is synchronous between the batch writes: give it a file or a buffer,
/// not a socket that may stall.
pub async fn import_csv<R: Read + Send>(
    store: &Store,
    input: R,
    target: ImportTarget,
    options: &ImportOptions,
    clock: &dyn Clock,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ImportReport, ImportError> {
    if options.batch_rows == 0 || options.max_line_bytes == 0 {
        return Err(
            StoreError::Invalid("batch_rows and max_line_bytes must be positive".into()).into(),
        );
    }
    let mut reader = Records::new(input, options.max_line_bytes);
    let header = reader.next()?.ok_or(ImportError::Empty)?;
    let columns = Columns::from_header(&header.fields, &options.email_column)?;
    let session = store.begin_import(target, clock.now_ms()).await?;
    let read = read_rows(
        store,
        &session,
        &mut reader,
        &columns,
        options,
        clock,
        progress,
    )
    .await;
    let failed = match read {
        Ok(mut report) => match store.commit_import(&session, clock.now_ms()).await {
            Ok(list) => {
                report.list = list;
                return Ok(report);
            }
            // E.g. another import took the list's name meanwhile.
            Err(e) => e.into(),
        },
        Err(e) => e,
    };
    // The import's error is the one to report; a failed cleanup leaves a stale staging list
    // that `Store::discard_stale_imports` removes later.
    if let Err(cleanup) = store.abort_import(&session).await {
        tracing::warn!(error = %cleanup, "could not discard an aborted import");
    }
    Err(failed)
}

async fn read_rows<R: Read + Send>(
    store: &Store,
    session: &ImportSession,
    reader: &mut Records<R>,
    columns: &Columns,
    options: &ImportOptions,
    clock: &dyn Clock,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        list: session.staging(),
        rows_read: 0,
        imported: 0,
        bad_rows: 0,
        bad: Vec::new(),
    };
    let mut batch = Vec::with_capacity(options.batch_rows);
    while let Some(record) = reader.next()? {
        report.rows_read += 1;
        match columns.recipient(record.fields) {
            Ok(r) => batch.push(r),
            Err(problem) => {
                report.bad_rows += 1;
                if report.bad.len() < options.max_reported {
                    report.bad.push(BadRow {
                        line: record.line,
                        problem,
                    });
                }
            }
        }
        if batch.len() >= options.batch_rows {
            flush(store, session, &mut batch, &mut report, clock.now_ms()).await?;
            progress(report.rows_read);
        }
    }
    flush(store, session, &mut batch, &mut report, clock.now_ms()).await?;
    progress(report.rows_read);
    Ok(report)
}

async fn flush(
    store: &Store,
    session: &ImportSession,
    batch: &mut Vec<NewRecipient>,
    report: &mut ImportReport,
    now: UnixMillis,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    store.import_batch(session, batch, now).await?;
    report.imported += batch.len() as u64;
    batch.clear();
    Ok(())
}

/// The header's meaning: which field is the e-mail, what the others are called.
struct Columns {
    names: Vec<String>,
    email: usize,
}

impl Columns {
    fn from_header(fields: &[String], email_column: &str) -> Result<Columns, ImportError> {
        let mut names: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
        if let Some(first) = names.first_mut() {
            // A byte order mark is legal at the start of UTF-8 and not part of the name.
            *first = first.trim_start_matches('\u{FEFF}').trim().to_string();
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(ImportError::UnnamedColumn(i + 1));
            }
            if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(ImportError::DuplicateColumn(name.clone()));
            }
        }
        let email = names
            .iter()
            .position(|n| n.to_lowercase() == email_column.trim().to_lowercase())
            .ok_or_else(|| ImportError::NoEmailColumn(email_column.to_string()))?;
        Ok(Columns { names, email })
    }

    fn recipient(&self, fields: Vec<String>) -> Result<NewRecipient, RowProblem> {
        if fields.len() != self.names.len() {
            return Err(RowProblem::Ragged {
                expected: self.names.len(),
                found: fields.len(),
            });
        }
        let mut email = String::new();
        let mut attributes = serde_json::Map::new();
        for (i, value) in fields.into_iter().enumerate() {
            if i == self.email {
                email = value.trim().to_string();
            } else {
                attributes.insert(self.names[i].clone(), serde_json::Value::String(value));
            }
        }
        if email.is_empty() {
            return Err(RowProblem::EmptyEmail);
        }
        Ok(NewRecipient { email, attributes })
    }
}

/// One CSV record, decoded, with the line it starts on.
struct Record {
    line: u64,
    fields: Vec<String>,
}

/// CSV records over a reader that refuses to run past the line limit.
struct Records<R: Read> {
    csv: csv::Reader<Bounded<R>>,
    record: csv::ByteRecord,
    /// Shared with the [`Bounded`] reader: how far it may read, and whether it refused.
    allowed: Arc<AtomicU64>,
    refused: Arc<AtomicBool>,
    limit: usize,
}

impl<R: Read> Records<R> {
    fn new(input: R, limit: usize) -> Self {
        let allowed = Arc::new(AtomicU64::new(window(0, limit)));
        let refused = Arc::new(AtomicBool::new(false));
        let bounded = Bounded {
            inner: input,
            read: 0,
            allowed: allowed.clone(),
            refused: refused.clone(),
        };
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(BUFFER)
            .from_reader(bounded);
        Records {
            csv,
            record: csv::ByteRecord::new(),
            allowed,
            refused,
            limit,
        }
    }

    fn next(&mut self) -> Result<Option<Record>, ImportError> {
        let start = self.csv.position().clone();
        let line = start.line();
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(_) if self.refused.load(Ordering::SeqCst) => {
                return Err(ImportError::LineTooLong {
                    line,
                    limit: self.limit,
                });
            }
            Err(e) => {
                return Err(ImportError::Csv {
                    line,
                    message: e.to_string(),
                });
            }
        }
        let end = self.csv.position().byte();
        if end - start.byte() > self.limit as u64 {
            return Err(ImportError::LineTooLong {
                line,
                limit: self.limit,
            });
        }
        self.allowed
            .store(window(end, self.limit), Ordering::SeqCst);
        let line = self.record.position().map_or(line, |p| p.line());
        let fields = self
            .record
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).map_err(|_| ImportError::Encoding { line }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Record { line, fields }))
    }
}

/// How far the source may be read while parsing a record that starts at `start`: the record
/// itself may take `limit` bytes, and the parser reads up to a buffer ahead.
fn window(start: u64, limit: usize) -> u64 {
    start + limit as u64 + BUFFER as u64
}

/// A reader that fails instead of reading past `allowed` bytes in total.
struct Bounded<R> {
    inner: R,
    read: u64,
    allowed: Arc<AtomicU64>,
    refused: Arc<AtomicBool>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = self.allowed.load(Ordering::SeqCst);
        if self.read >= allowed {
            self.refused.store(true, Ordering::SeqCst);
            return Err(io::Error::other("record over the line limit"));
        }
        let room = usize::try_from(allowed - self.read).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.read += n as u64;
        Ok(n)
    }
}
