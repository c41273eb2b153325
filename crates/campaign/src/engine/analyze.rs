//! Running an analysis (SPEC §3.2): the target list is read page by page, each recipient is
//! decided ([`crate::analysis`]) and, when kept, personalized once to find template errors
//! before anything is sent. The log is written page by page; a new analysis (or one after a
//! crash) starts by deleting what the last one wrote, and an analysis with template errors
//! leaves no row behind and the delivery a Draft.
//!
//! Three stages run at once, a couple of pages apart: a reader (the page and its address
//! states), the checks (decisions in list order, then the personalization spread over the
//! blocking threads) and a writer (the log rows). Run one after the other, each waited on the
//! database or on the CPU in turn; overlapped, a 2-core machine analyses about twice as fast.

use super::{AnalysisProgress, Engine, EngineError};
use crate::analysis::{Analyzer, Candidate, Counts};
use crate::model::{AddressState, DeliveryId, DeliveryState, ListId, LogId, LogRow, Recipient};
use crate::quarantine;
use crate::render::MessageTemplate;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pages the reader may be ahead of the checks, and the checks ahead of the writer: enough to
/// keep the three busy, and a bounded amount of memory (a page is `analysis_page` recipients).
const PAGES_AHEAD: usize = 2;

/// A page of the target list with the states its addresses have.
type Page = (Vec<Recipient>, BTreeMap<String, AddressState>);

/// A recipient whose message cannot be personalized.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RecipientError {
    pub recipient: i64,
    pub address: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{total} recipient(s) cannot be personalized, e.g. {}; nothing was analyzed", first(.errors))]
    Templates {
        total: u64,
        /// The first ones ([`EngineConfig::max_reported_errors`](super::EngineConfig)).
        errors: Vec<RecipientError>,
    },
    #[error("delivery {0} is already being analyzed")]
    Busy(i64),
    /// A stage of the analysis panicked or was cancelled; nothing is left Analyzed.
    #[error("the analysis stopped: {0}")]
    Aborted(String),
}

fn first(errors: &[RecipientError]) -> String {
    errors
        .first()
        .map(|e| format!("{} (recipient {}): {}", e.address, e.recipient, e.error))
        .unwrap_or_default()
}

/// Marks a delivery as being analyzed for as long as it lives.
struct Analyzing<'a> {
    engine: &'a Engine,
    id: DeliveryId,
}

impl Drop for Analyzing<'_> {
    fn drop(&mut self) {
        self.engine.inner.analyzing.lock().remove(&self.id);
        self.engine.inner.progress.lock().remove(&self.id);
    }
}

impl Engine {
    /// Analyzes a Draft (or re-analyzes an Analyzed) delivery; `progress` hears the counts
    /// after every page. Returns the final counts.
    pub async fn analyze(
        &self,
        id: DeliveryId,
        progress: &(dyn Fn(&Counts) + Send + Sync),
    ) -> Result<Counts, EngineError> {
        if !self.inner.analyzing.lock().insert(id) {
            return Err(AnalysisError::Busy(id.0).into());
        }
        let _guard = Analyzing { engine: self, id };
        // Back to Draft first, so that a start racing a re-analysis finds no half-built log.
        self.transition(
            id,
            &[DeliveryState::Draft, DeliveryState::Analyzed],
            DeliveryState::Draft,
            "analyzed",
        )
        .await?;
        let d = self.delivery(id).await?;
        let template = self.template_for(&d)?;
        let store = self.store().clone();
        store.reset_log(id).await?;
        let recipients = store.count_recipients(d.list).await?;
        let page = self.inner.cfg.analysis_page;
        let (page_tx, page_rx) = mpsc::channel(PAGES_AHEAD);
        let reader = tokio::spawn(read_pages(store.clone(), d.list, page, page_tx));
        let (rows_tx, rows_rx) = mpsc::channel(PAGES_AHEAD);
        let writer = tokio::spawn(write_pages(store.clone(), rows_rx));
        let run = Run {
            id,
            recipients,
            template,
            progress,
        };
        // The checks drop both channel ends when they return, which ends the other stages; the
        // writer must be done before the log is reset or the delivery moves on.
        let checked = self.check_pages(run, page_rx, rows_tx).await;
        let written = stage(writer.await);
        let read = stage(reader.await);
        let (counts, errors, total) = checked?;
        written?;
        read?;
        if total > 0 {
            store.reset_log(id).await?;
            return Err(AnalysisError::Templates { total, errors }.into());
        }
        self.transition(
            id,
            &[DeliveryState::Draft],
            DeliveryState::Analyzed,
            "analyzed",
        )
        .await?;
        Ok(counts)
    }

    /// Decides and checks each page as the reader delivers it and passes its rows to the
    /// writer, until the pages end or the writer stops (its error is the one reported).
    async fn check_pages(
        &self,
        run: Run<'_>,
        mut pages: mpsc::Receiver<Result<Page, StoreError>>,
        rows: mpsc::Sender<Vec<LogRow>>,
    ) -> Result<(Counts, Vec<RecipientError>, u64), EngineError> {
        let cfg = &self.inner.cfg;
        let mut analyzer = Analyzer::new(self.now(), &cfg.quarantine);
        let mut errors = Vec::new();
        let mut total = 0u64;
        while let Some(page) = pages.recv().await {
            let (page, states) = page?;
            let mut kept = Vec::new();
            let mut log = Vec::with_capacity(page.len());
            for (i, r) in page.iter().enumerate() {
                let c = Candidate {
                    address: r.email.clone(),
                    attributes: r.id,
                };
                let decision = analyzer.decide(c, |k| states.get(k).cloned());
                if decision.exclusion.is_none() {
                    kept.push((i, decision.address.clone()));
                }
                log.push(decision.log_row(LogId(0), run.id, Some(decision.candidate.attributes)));
            }
            let found = check_all(&run.template, Arc::new(page), kept).await?;
            total += found.len() as u64;
            let room = cfg.max_reported_errors.saturating_sub(errors.len());
            errors.extend(found.into_iter().take(room));
            // Past the first error nothing more is written: it would all be deleted.
            if total == 0 && rows.send(log).await.is_err() {
                break;
            }
            let counts = *analyzer.counts();
            (run.progress)(&counts);
            let shown = AnalysisProgress {
                counts,
                recipients: run.recipients,
            };
            self.inner.progress.lock().insert(run.id, shown);
        }
        Ok((*analyzer.counts(), errors, total))
    }
}

/// What the checks of one analysis need besides the engine.
struct Run<'a> {
    id: DeliveryId,
    recipients: u64,
    template: MessageTemplate,
    progress: &'a (dyn Fn(&Counts) + Send + Sync),
}

/// The reader stage: pages in id order, each with its address states, until the list ends or
/// the checks stop listening.
async fn read_pages(
    store: Store,
    list: ListId,
    size: u32,
    pages: mpsc::Sender<Result<Page, StoreError>>,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = match store.recipients_page(list, after, size).await {
            Ok(page) => page,
            Err(e) => {
                let _ = pages.send(Err(e)).await;
                return Ok(());
            }
        };
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id);
        let keys: Vec<String> = page
            .iter()
            .map(|r| quarantine::address_key(&r.email))
            .collect();
        let item = store.address_states(&keys).await.map(|s| (page, s));
        if pages.send(item).await.is_err() {
            return Ok(());
        }
    }
}

/// The writer stage: each page's rows in order, stopping at the first error.
async fn write_pages(
    store: Store,
    mut pages: mpsc::Receiver<Vec<LogRow>>,
) -> Result<(), StoreError> {
    while let Some(rows) = pages.recv().await {
        store.insert_log_rows(&rows).await?;
    }
    Ok(())
}

/// Personalizes the kept recipients of a page (index in the page, address as targeted) on the
/// blocking threads, one share per core; the errors come back in page order.
async fn check_all(
    template: &MessageTemplate,
    page: Arc<Vec<Recipient>>,
    kept: Vec<(usize, String)>,
) -> Result<Vec<RecipientError>, EngineError> {
    let shares = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_share = kept.len().div_ceil(shares).max(1);
    let kept = Arc::new(kept);
    let mut tasks = Vec::with_capacity(shares);
    for start in (0..kept.len()).step_by(per_share) {
        let (template, page, kept) = (template.clone(), page.clone(), kept.clone());
        let end = (start + per_share).min(kept.len());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for (i, address) in &kept[start..end] {
                let r = &page[*i];
                if let Err(e) = template.check(address, &r.attributes) {
                    found.push(RecipientError {
                        recipient: r.id.0,
                        address: address.clone(),
                        error: e.to_string(),
                    });
                }
            }
            found
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(
            task.await
                .map_err(|e| AnalysisError::Aborted(e.to_string()))?,
        );
    }
    Ok(errors)
}

/// A stage's own result, or how it ended when it did not return.
fn stage(
    joined: Result<Result<(), StoreError>, tokio::task::JoinError>,
) -> Result<(), EngineError> {
    match joined {
        Ok(r) => Ok(r?),
        Err(e) => Err(AnalysisError::Aborted(e.to_string()).into()),
    }
}
