//! What a running MTA offers its embedder, the API and the CLI: injection, queue views and
//! operator actions (flush, drain, suspend, resume, reload) and graceful shutdown.

use crate::inject::{InjectError, Injected, Injection};
use crate::pools::Pools;
use crate::queue::Cmd;
use crate::queue::view::{MessageView, QueueSummary};
use crate::shaping::ReloadError;
use crate::start::Mta;
use cartero_clock::{SharedClock, UnixMillis};
use cartero_shaping::{Scope, ShapingAction, ShapingView};
use std::net::SocketAddr;

impl Mta {
    /// Spools an injection. It runs in its own task, so a caller that goes away (an HTTP
    /// client disconnecting, a cancelled future) cannot stop it half done: between the spool's
    /// commit and the recording of its idempotency keys a cancellation would leave the keys
    /// claimed, and every retry of them refused as "in progress".
    pub async fn inject(&self, injection: Injection) -> Result<Injected, InjectError> {
        let injector = self.injector.clone();
        tokio::spawn(async move { injector.inject(injection).await })
            .await
            .unwrap_or_else(|e| Err(InjectError::Task(e.to_string())))
    }

    pub fn smtp_addrs(&self) -> &[SocketAddr] {
        &self.smtp_addrs
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The clock the MTA runs on (operator actions compute their end time from it).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The first API token (for the CLI and tests running in-process).
    pub fn api_token(&self) -> &str {
        self.tokens.first().map_or("", String::as_str)
    }

    pub async fn queue_summary(&self) -> Option<QueueSummary> {
        self.sched.ask(|reply| Cmd::Summary { reply }).await
    }

    pub async fn inspect(&self, id: cartero_spool::MessageId) -> Option<MessageView> {
        self.sched
            .ask(|reply| Cmd::Inspect { id, reply })
            .await
            .flatten()
    }

    pub async fn flush(&self, domain: Option<String>) -> usize {
        self.sched
            .ask(|reply| Cmd::Flush { domain, reply })
            .await
            .unwrap_or(0)
    }

    pub async fn drain(&self, domain: String) -> usize {
        self.sched
            .ask(|reply| Cmd::Drain { domain, reply })
            .await
            .unwrap_or(0)
    }

    /// Re-examines due recipients now; with a manual clock, call after advancing it. (When the
    /// scheduler is busy it re-examines them anyway, so a dropped tick costs nothing.)
    pub fn tick(&self) {
        self.sched.try_send(Cmd::Tick);
    }

    /// A reader of the durable event outbox for `consumer`, one of
    /// [`crate::StartOptions::event_outbox`]; it resumes after the consumer's last `ack`. Fails
    /// for a name not configured, and while another reader for it is open.
    pub fn event_outbox(
        &self,
        consumer: &str,
    ) -> Result<crate::EventOutbox, cartero_spool::SpoolError> {
        self.spool
            .outbox_reader(consumer)
            .map(crate::EventOutbox::new)
    }

    pub fn spool_stats(&self) -> cartero_spool::SpoolStats {
        self.spool.stats()
    }

    /// Per (source, site) configured and live limits, suspensions and warm-up.
    pub fn shaping_view(&self) -> ShapingView {
        self.shaping.view()
    }

    /// Suspends a scope; what is queued for it waits without using attempts.
    pub async fn suspend(
        &self,
        scope: Scope,
        until: Option<UnixMillis>,
        reason: String,
    ) -> Option<ShapingAction> {
        self.sched
            .ask(|reply| Cmd::Suspend {
                scope,
                until,
                reason,
                reply,
            })
            .await
    }

    /// Lifts a suspension; `None` when there was none.
    pub async fn resume(&self, scope: Scope) -> Option<ShapingAction> {
        self.sched
            .ask(|reply| Cmd::Resume { scope, reply })
            .await
            .flatten()
    }

    /// Re-reads the configuration and applies its `[shaping]` section (and warm-up flags of the
    /// sources). On any error the running configuration stays and the error is returned.
    pub fn reload_shaping(&self) -> Result<(), ReloadError> {
        let reload = self.reloader.as_ref().ok_or(ReloadError::NoConfigFile)?;
        let cfg = reload().map_err(ReloadError::Config)?;
        self.shaping
            .reload(cfg.shaping, &Pools::warming(&cfg.delivery))?;
        tracing::info!("shaping configuration reloaded");
        Ok(())
    }

    /// Stops accepting, lets in-flight transactions finish (up to `delivery.shutdown_grace`),
    /// then flushes events. Queued recipients stay in the spool for the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let done = self.sched.ask(|reply| Cmd::Shutdown { reply });
        if tokio::time::timeout(self.grace, done).await.is_err() {
            tracing::warn!("shutdown grace period over with transactions still in flight");
        }
        if let Err(e) = crate::shaping::save_state(self.shaping.as_ref(), &self.data_dir) {
            tracing::error!(error = %e, "cannot save shaping state");
        }
        // Journal updates written without waiting (final states) reach the disk before exit.
        if let Err(e) = self.spool.flush().await {
            tracing::error!(error = %e, "flushing the spool at shutdown");
        }
        if let Some(f) = &self.file_sink {
            let _ = f.flush().await;
        }
        for w in &self.webhooks {
            let _ = w.persist().await;
        }
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
