//! Running an analysis (SPEC §3.2): the target list is read page by page, each recipient is
//! decided ([`crate::analysis`]) and, when kept, personalized once to find template errors
//! before anything is sent. The log is written page by page; a new analysis (or one after a
//! crash) starts by deleting what the last one wrote, and an analysis with template errors
//! leaves no row behind and the delivery a Draft.

use super::{AnalysisProgress, Engine, EngineError};
use crate::analysis::{Analyzer, Candidate, Counts};
use crate::model::{DeliveryId, DeliveryState, LogId, RecipientId};
use crate::quarantine;

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
        let template = self.template_of(&d.from, &d.subject, &d.text_template, &d.html_template)?;
        let store = self.store();
        store.reset_log(id).await?;
        let cfg = &self.inner.cfg;
        let recipients = store.count_recipients(d.list).await?;
        let mut analyzer = Analyzer::new(self.now(), &cfg.quarantine);
        let mut errors = Vec::new();
        let mut error_total = 0u64;
        let mut after = None;
        loop {
            let page = store
                .recipients_page(d.list, after, cfg.analysis_page)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let keys: Vec<String> = page
                .iter()
                .map(|r| quarantine::address_key(&r.email))
                .collect();
            let states = store.address_states(&keys).await?;
            let mut rows = Vec::with_capacity(page.len());
            for r in &page {
                let c = Candidate {
                    address: r.email.clone(),
                    attributes: r.id,
                };
                let decision = analyzer.decide(c, |k| states.get(k).cloned());
                if decision.exclusion.is_none()
                    && let Err(e) = template.check(&decision.address, &r.attributes)
                {
                    error_total += 1;
                    if errors.len() < cfg.max_reported_errors {
                        errors.push(RecipientError {
                            recipient: r.id.0,
                            address: decision.address.clone(),
                            error: e.to_string(),
                        });
                    }
                }
                let recipient: RecipientId = decision.candidate.attributes;
                rows.push(decision.log_row(LogId(0), id, Some(recipient)));
            }
            // Past the first error nothing more is written: it would all be deleted.
            if error_total == 0 {
                store.insert_log_rows(&rows).await?;
            }
            progress(analyzer.counts());
            self.inner.progress.lock().insert(
                id,
                AnalysisProgress {
                    counts: *analyzer.counts(),
                    recipients,
                },
            );
        }
        if error_total > 0 {
            store.reset_log(id).await?;
            return Err(AnalysisError::Templates {
                total: error_total,
                errors,
            }
            .into());
        }
        self.transition(
            id,
            &[DeliveryState::Draft],
            DeliveryState::Analyzed,
            "analyzed",
        )
        .await?;
        Ok(*analyzer.counts())
    }
}
