//! An MTA that answers as a test tells it, deduplicating by idempotency key as the real one
//! does: the injector the engine and transactional tests hand their messages to.

use cartero_campaign::inject::{BoxFuture, Handed, Injector, Outgoing, Unavailable};
use cartero_campaign::model::LogId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// An MTA that takes everything (unless told otherwise), deduplicating by idempotency key as
/// the real one does.
#[derive(Default)]
pub struct ScriptedMta {
    /// Key → message id.
    pub keys: Mutex<HashMap<String, String>>,
    /// Every message handed over, repeats included.
    pub calls: Mutex<Vec<Outgoing>>,
    pub unavailable: AtomicBool,
    /// Take the batch, then answer "unavailable" (an acknowledgement lost on the way).
    pub lose_answers: AtomicBool,
    pub refuse: Mutex<Vec<String>>,
    /// When set, each batch waits for a permit.
    pub gate: Option<Semaphore>,
    /// Batches that reached the MTA (before the gate).
    pub entered: AtomicUsize,
    /// Told when a batch reaches the MTA and after it is answered (or not).
    pub answered: tokio::sync::Notify,
    /// The MTA's clock: a message it does not have is refused once its `expires_at` passed
    /// (unset: nothing expires).
    pub clock: Option<cartero_clock::ManualClock>,
}

impl ScriptedMta {
    pub fn gated() -> Self {
        Self {
            gate: Some(Semaphore::new(0)),
            ..Self::default()
        }
    }

    pub fn distinct(&self) -> usize {
        self.keys.lock().len()
    }

    pub fn handed(&self) -> usize {
        self.calls.lock().len()
    }

    pub fn message_of(&self, row: LogId) -> Option<Outgoing> {
        self.calls.lock().iter().find(|o| o.row == row).cloned()
    }
}

impl Injector for ScriptedMta {
    fn inject(&self, batch: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<Handed>, Unavailable>> {
        Box::pin(async move {
            self.entered.fetch_add(1, Ordering::SeqCst);
            self.answered.notify_waiters();
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
            let out = self.answer(batch);
            self.answered.notify_waiters();
            out
        })
    }
}

impl ScriptedMta {
    /// Waits (10 s at most) until `done` holds, checking whenever a batch reaches the MTA and
    /// whenever it answers one.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let wait = async {
            loop {
                let next = self.answered.notified();
                tokio::pin!(next);
                next.as_mut().enable();
                if done(self) {
                    return;
                }
                next.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }

    fn answer(&self, batch: Vec<Outgoing>) -> Result<Vec<Handed>, Unavailable> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Unavailable("scripted outage".into()));
        }
        let mut out = Vec::new();
        for o in &batch {
            self.calls.lock().push(o.clone());
            if self.refuse.lock().contains(&o.recipient) {
                out.push(Handed::Refused {
                    reason: "550 5.1.3 bad address".into(),
                });
                continue;
            }
            let mut keys = self.keys.lock();
            let now = self.clock.as_ref().map(cartero_clock::Clock::now_ms);
            let past = matches!((o.expires_at, now), (Some(at), Some(now)) if at <= now);
            if past && !keys.contains_key(&o.idempotency_key()) {
                out.push(Handed::Expired {
                    reason: "the message expired before it was injected".into(),
                });
                continue;
            }
            let n = keys.len() + 1;
            let id = keys
                .entry(o.idempotency_key())
                .or_insert_with(|| format!("{:016x}", 0xabc0_0000_u64 + n as u64))
                .clone();
            out.push(Handed::Taken { message_id: id });
        }
        if self.lose_answers.swap(false, Ordering::SeqCst) {
            return Err(Unavailable("answer lost".into()));
        }
        Ok(out)
    }
}
