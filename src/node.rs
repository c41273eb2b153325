//! The campaign layer inside `cartero serve`: its store and engine, the [`Injector`] over the
//! in-process MTA, and the pump that feeds the MTA's events to the delivery logs. This is the
//! only place that knows both the MTA and the campaign layer.

use crate::remote_mta::RemoteInjector;
use anyhow::Context;
use cartero_campaign::api::{ApiContext, router};
use cartero_campaign::config::CampaignConfig;
use cartero_campaign::engine::Engine;
use cartero_campaign::inject::{BoxFuture, Handed, Injector, Outgoing, Unavailable, hand_each};
use cartero_campaign::store::{Store, StoreOptions};
use cartero_clock::SharedClock;
use cartero_events::Event;
use cartero_mta::{EventOutbox, Injection, Mta, MtaConfig};
use cartero_spool::SpoolError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The largest CSV an import request may carry.
const MAX_IMPORT_BYTES: usize = 256 << 20;

/// Hands campaign messages to the in-process MTA, one recipient per message (each is
/// personalized), each with its row's idempotency key. Until the MTA is set (it starts after
/// the campaign layer, whose routes it serves) every batch is "unavailable".
#[derive(Default)]
pub struct MtaInjector {
    mta: OnceLock<Arc<Mta>>,
}

impl MtaInjector {
    fn set(&self, mta: Arc<Mta>) {
        let _ = self.mta.set(mta);
    }
}

fn injection(o: Outgoing) -> Injection {
    let metadata = o.metadata();
    let key = o.idempotency_key();
    Injection {
        sender: o.sender,
        recipients: vec![o.recipient],
        body: o.body,
        metadata,
        validity: Some(o.validity),
        expires_at: o.expires_at,
        pool: o.pool,
        trace: None,
        idempotency_keys: vec![Some(key)],
    }
}

impl Injector for MtaInjector {
    fn inject(&self, batch: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<Handed>, Unavailable>> {
        Box::pin(async move {
            let mta = self
                .mta
                .get()
                .cloned()
                .ok_or_else(|| Unavailable("the MTA is starting".into()))?;
            hand_each(batch, |o| {
                let (mta, inj) = (mta.clone(), injection(o));
                async move {
                    match mta.inject(inj).await {
                        Ok(injected) => Ok(Handed::Taken {
                            message_id: injected.message_id,
                        }),
                        Err(e @ cartero_mta::InjectError::Expired { .. }) => Ok(Handed::Expired {
                            reason: e.to_string(),
                        }),
                        Err(e) if e.is_transient() => Err(e.to_string()),
                        Err(e) => Ok(Handed::Refused {
                            reason: e.to_string(),
                        }),
                    }
                }
            })
            .await
        })
    }
}

/// The outbox consumer the campaign layer reads the MTA's events as.
pub const OUTBOX_CONSUMER: &str = "campaign";

/// The campaign layer of a `serve` process, before and after the MTA starts.
pub struct Campaign {
    engine: Engine,
    /// The in-process MTA's injector; `None` in remote MTA mode.
    local: Option<Arc<MtaInjector>>,
    event_batch: usize,
    pump: Option<JoinHandle<()>>,
    tick: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    /// The transactional outbox, stopped with the senders (before the MTA).
    tx_outbox: Option<JoinHandle<()>>,
    tx_stop: watch::Sender<bool>,
}

impl Campaign {
    /// Opens the store (migrations applied) and builds the engine and the routes the MTA
    /// serves for it.
    pub async fn open(
        mta: &MtaConfig,
        cfg: &CampaignConfig,
        clock: SharedClock,
    ) -> anyhow::Result<(Campaign, axum::Router)> {
        cfg.validate()?;
        let url = (!cfg.database_url.is_empty()).then_some(cfg.database_url.as_str());
        let store = Store::open(
            url,
            &mta.data_dir.join("campaign"),
            &StoreOptions::default(),
        )
        .await
        .context("opening the campaign database")?;
        let (injector, local): (Arc<dyn Injector>, _) = if cfg.mta.is_empty() {
            let local = Arc::new(MtaInjector::default());
            (local.clone(), Some(local))
        } else {
            let path = &cfg.mta_token_file;
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading [campaign] mta_token_file {path}"))?;
            let token = token.trim().to_string();
            anyhow::ensure!(
                !token.is_empty(),
                "[campaign] mta_token_file {path} is empty"
            );
            let ca = (!cfg.mta_ca_file.is_empty()).then(|| std::path::Path::new(&cfg.mta_ca_file));
            (Arc::new(RemoteInjector::new(&cfg.mta, token, ca)?), None)
        };
        let engine = Engine::new(
            store,
            clock.clone(),
            injector,
            cfg.engine(mta.bounce.qualification.clone()),
        );
        let routes = router(ApiContext {
            engine: engine.clone(),
            clock,
            max_import_bytes: MAX_IMPORT_BYTES,
        });
        let (stop, _) = watch::channel(false);
        let (tx_stop, _) = watch::channel(false);
        let campaign = Campaign {
            engine,
            local,
            event_batch: cfg.event_batch,
            pump: None,
            tick: None,
            stop,
            tx_outbox: None,
            tx_stop,
        };
        Ok((campaign, routes))
    }

    /// Once the MTA runs (started with [`OUTBOX_CONSUMER`] among its outbox consumers):
    /// resumes what the last run left, starts the event pump, the validity check and the
    /// transactional outbox.
    pub async fn run(&mut self, mta: Arc<Mta>) -> anyhow::Result<()> {
        let outbox = mta
            .event_outbox(OUTBOX_CONSUMER)
            .context("opening the MTA's event outbox")?;
        if let Some(local) = &self.local {
            local.set(mta);
        }
        self.recover().await?;
        let (engine, batch) = (self.engine.clone(), self.event_batch);
        self.pump = Some(tokio::spawn(pump(
            engine,
            outbox,
            batch,
            self.stop.subscribe(),
        )));
        self.run_background();
        Ok(())
    }

    /// Remote MTA mode: the events come in through `POST /api/v1/events`; the rest runs as
    /// with the local MTA.
    pub async fn run_remote(&mut self) -> anyhow::Result<()> {
        self.recover().await?;
        self.run_background();
        Ok(())
    }

    async fn recover(&self) -> anyhow::Result<()> {
        self.engine
            .recover()
            .await
            .context("resuming the campaign deliveries")
    }

    /// Starts the validity check and the transactional outbox.
    fn run_background(&mut self) {
        let engine = self.engine.clone();
        let mut stop = self.stop.subscribe();
        self.tick = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = engine.tick().await {
                    tracing::warn!(error = %e, "campaign: validity check failed");
                }
            }
        }));
        let (engine, stop) = (self.engine.clone(), self.tx_stop.subscribe());
        self.tx_outbox = Some(tokio::spawn(async move { engine.run_outbox(stop).await }));
    }

    /// Senders and the transactional outbox first (each finishes the batch it is handing
    /// over), before the MTA stops.
    pub async fn stop_senders(&mut self) {
        let _ = self.tx_stop.send(true);
        if let Some(t) = self.tx_outbox.take() {
            let _ = t.await;
        }
        self.engine.shutdown().await;
    }

    /// After the MTA stopped: the pump applies what the outbox still holds (it ends when the
    /// spool is closed and read), for at most `grace`; whatever it did not apply is read again
    /// at the next start.
    pub async fn finish(self, grace: Duration) {
        if let Some(mut pump) = self.pump
            && tokio::time::timeout(grace, &mut pump).await.is_err()
        {
            let _ = self.stop.send(true);
            let _ = pump.await;
        }
        let _ = self.stop.send(true);
        if let Some(t) = self.tick {
            let _ = t.await;
        }
        self.engine.store().close().await;
    }
}

/// Applies the MTA's events from its durable outbox in batches, acknowledging a batch only
/// once it is stored: at least once across any crash, and idempotently. A batch the database
/// refuses is retried (the outbox keeps it) until it is stored or the process stops.
async fn pump(
    engine: Engine,
    mut outbox: EventOutbox,
    max: usize,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let batch = tokio::select! {
            got = outbox.next_batch(max) => got,
            _ = stop.changed() => return,
        };
        let batch = match batch {
            Ok(b) => b,
            // The spool closed (shutdown) and everything was read.
            Err(SpoolError::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "campaign: reading the event outbox failed");
                return;
            }
        };
        let Some(last) = batch.last().map(|e| e.position) else {
            continue;
        };
        let events: Vec<Event> = batch.into_iter().map(|e| e.event).collect();
        if !apply_until_done(&engine, &events, &mut stop).await {
            return;
        }
        if let Err(e) = outbox.ack(last).await {
            tracing::warn!(error = %e, "campaign: acknowledging events failed (they come again)");
        }
    }
}

/// Applies a batch, retrying with backoff; `false` when the process stops first.
async fn apply_until_done(
    engine: &Engine,
    batch: &[Event],
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut wait = Duration::from_millis(100);
    loop {
        match engine.apply_events(batch).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), "campaign: applying events failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return false,
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_campaign::model::{DeliveryId, LogId};

    #[test]
    fn campaign_injections_are_bulk_so_inmail_adds_list_unsubscribe() {
        let mut o = Outgoing {
            delivery: DeliveryId(3),
            row: LogId(9),
            sender: "news@src.test".into(),
            recipient: "ana@dest.test".into(),
            body: b"Subject: x\r\n\r\nx\r\n".to_vec(),
            validity: Duration::from_secs(60),
            expires_at: Some(1_700_000_060_000),
            pool: None,
            bulk: true,
        };
        let inj = injection(o.clone());
        assert_eq!(
            inj.expires_at,
            Some(1_700_000_060_000),
            "the validity's end goes along"
        );
        assert_eq!(
            inj.metadata.get("bulk"),
            Some(&serde_json::Value::Bool(true))
        );
        assert_eq!(inj.metadata["delivery_id"], "3");
        assert_eq!(inj.metadata["log_id"], 9);
        assert_eq!(
            inj.idempotency_keys,
            [Some("cartero-campaign:3:9".to_string())]
        );
        // A transactional message is not bulk mail: no List-Unsubscribe.
        o.bulk = false;
        assert_eq!(injection(o).metadata.get("bulk"), None);
    }
}
