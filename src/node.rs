//! The campaign layer inside `cartero serve`: its store and engine, the [`Injector`] over the
//! in-process MTA, and the pump that feeds the MTA's events to the delivery logs. This is the
//! only place that knows both the MTA and the campaign layer.

use anyhow::Context;
use cartero_campaign::api::{ApiContext, router};
use cartero_campaign::config::CampaignConfig;
use cartero_campaign::engine::Engine;
use cartero_campaign::inject::{BoxFuture, Handed, Injector, Outgoing, Unavailable};
use cartero_campaign::store::{Store, StoreOptions};
use cartero_clock::SharedClock;
use cartero_events::{ChannelSink, Event};
use cartero_mta::{Injection, Mta, MtaConfig};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

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

fn injection(o: &Outgoing) -> Injection {
    Injection {
        sender: o.sender.clone(),
        recipients: vec![o.recipient.clone()],
        body: o.body.clone(),
        metadata: o.metadata(),
        validity: Some(o.validity),
        pool: o.pool.clone(),
        trace: None,
        idempotency_keys: vec![Some(o.idempotency_key())],
    }
}

impl Injector for MtaInjector {
    fn inject<'a>(
        &'a self,
        batch: &'a [Outgoing],
    ) -> BoxFuture<'a, Result<Vec<Handed>, Unavailable>> {
        Box::pin(async move {
            let mta = self
                .mta
                .get()
                .cloned()
                .ok_or_else(|| Unavailable("the MTA is starting".into()))?;
            // Concurrently: the spool commits a group of messages per disk sync.
            let mut set = JoinSet::new();
            for (i, o) in batch.iter().enumerate() {
                let (mta, inj) = (mta.clone(), injection(o));
                set.spawn(async move { (i, mta.inject(inj).await) });
            }
            let mut answers: Vec<Option<Handed>> = vec![None; batch.len()];
            let mut transient = None;
            while let Some(done) = set.join_next().await {
                let (i, result) = done.map_err(|e| Unavailable(format!("injection task: {e}")))?;
                answers[i] = Some(match result {
                    Ok(injected) => Handed::Taken {
                        message_id: injected.message_id,
                    },
                    Err(e) if e.is_transient() => {
                        transient = Some(e.to_string());
                        continue;
                    }
                    Err(e) => Handed::Refused {
                        reason: e.to_string(),
                    },
                });
            }
            // The rows already taken are handed again with their keys: the MTA repeats its
            // answer without spooling twice.
            if let Some(why) = transient {
                return Err(Unavailable(why));
            }
            answers
                .into_iter()
                .map(|a| a.ok_or_else(|| Unavailable("an injection gave no answer".into())))
                .collect()
        })
    }
}

/// The campaign layer of a `serve` process, before and after the MTA starts.
pub struct Campaign {
    engine: Engine,
    injector: Arc<MtaInjector>,
    events: Option<mpsc::UnboundedReceiver<Event>>,
    event_batch: usize,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// What the MTA must be started with for the campaign layer.
pub struct ForMta {
    pub sink: Arc<ChannelSink>,
    pub routes: axum::Router,
}

impl Campaign {
    /// Opens the store (migrations applied) and builds the engine and its routes.
    pub async fn open(
        mta: &MtaConfig,
        cfg: &CampaignConfig,
        clock: SharedClock,
    ) -> anyhow::Result<(Campaign, ForMta)> {
        cfg.validate()?;
        let url = (!cfg.database_url.is_empty()).then_some(cfg.database_url.as_str());
        let store = Store::open(
            url,
            &mta.data_dir.join("campaign"),
            &StoreOptions::default(),
        )
        .await
        .context("opening the campaign database")?;
        let injector = Arc::new(MtaInjector::default());
        let engine = Engine::new(
            store,
            clock.clone(),
            injector.clone(),
            cfg.engine(mta.bounce.qualification.clone()),
        );
        let routes = router(ApiContext {
            engine: engine.clone(),
            clock,
            max_import_bytes: MAX_IMPORT_BYTES,
        });
        let (sink, rx) = ChannelSink::unbounded();
        let (stop, _) = watch::channel(false);
        let campaign = Campaign {
            engine,
            injector,
            events: Some(rx),
            event_batch: cfg.event_batch,
            tasks: Vec::new(),
            stop,
        };
        let for_mta = ForMta {
            sink: Arc::new(sink),
            routes,
        };
        Ok((campaign, for_mta))
    }

    /// Once the MTA runs: resumes what the last run left, starts the event pump and the
    /// validity check.
    pub async fn run(&mut self, mta: Arc<Mta>) -> anyhow::Result<()> {
        self.injector.set(mta);
        self.engine
            .recover()
            .await
            .context("resuming the campaign deliveries")?;
        if let Some(rx) = self.events.take() {
            let (engine, batch) = (self.engine.clone(), self.event_batch);
            let stop = self.stop.subscribe();
            self.tasks.push(tokio::spawn(pump(engine, rx, batch, stop)));
        }
        let engine = self.engine.clone();
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
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
        Ok(())
    }

    /// Senders first (each finishes the batch it is handing over), before the MTA stops.
    pub async fn stop_senders(&self) {
        self.engine.shutdown().await;
    }

    /// After the MTA stopped: the events it emitted are applied, then the tasks end.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.engine.store().close().await;
    }
}

/// Applies the MTA's events in batches. A failed batch is retried (the events are kept):
/// events are applied at least once, and idempotently.
async fn pump(
    engine: Engine,
    mut rx: mpsc::UnboundedReceiver<Event>,
    max: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(max);
    loop {
        if batch.is_empty() {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(e) => batch.push(e),
                    None => return,
                },
                _ = stop.changed() => {
                    // Shutting down: what is queued is applied, then the pump ends.
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                    }
                    apply_until_done(&engine, &batch).await;
                    return;
                }
            }
        }
        while batch.len() < max {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        apply_until_done(&engine, &batch).await;
        batch.clear();
    }
}

async fn apply_until_done(engine: &Engine, batch: &[Event]) {
    if batch.is_empty() {
        return;
    }
    let mut wait = Duration::from_millis(100);
    // Bounded: a database down for longer than this loses nothing more than a restart would.
    for _ in 0..60 {
        match engine.apply_events(batch).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), "campaign: applying events failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "campaign: events dropped after repeated database errors"
    );
}
