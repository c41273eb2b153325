//! The one way the campaign layer hands messages to an MTA. The binary implements
//! [`Injector`] over the in-process MTA; remote MTA mode implements it over a cartero's HTTP
//! API. The campaign layer never sees MTA types.
//!
//! Every message carries an idempotency key derived from its log row, so handing the same row
//! over twice — after a crash between the MTA's acknowledgement and the row being marked Taken,
//! or after a timeout — never sends twice: the MTA answers the repeat with the original id.

use crate::model::{DeliveryId, LogId};
use crate::observe::{DELIVERY_ID_KEY, LOG_ID_KEY};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One rendered message for one log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub delivery: DeliveryId,
    pub row: LogId,
    /// Envelope sender.
    pub sender: String,
    pub recipient: String,
    /// The complete RFC 5322 message, CRLF line endings.
    pub body: Vec<u8>,
    pub validity: Duration,
    /// When the validity ends (ms since the epoch): the delivery's start plus its validity,
    /// or a transactional call's time plus its version's. The MTA sends nothing after it,
    /// however late the row is handed over, and refuses a message it does not already have
    /// once it passed ([`Handed::Expired`]).
    pub expires_at: Option<u64>,
    pub pool: Option<String>,
    /// Campaign mail is bulk (the MTA adds RFC 8058 List-Unsubscribe to it); a transactional
    /// message is not.
    pub bulk: bool,
}

impl Outgoing {
    /// The key the MTA deduplicates this row's message by: stable for the row, whatever
    /// process or node hands it over.
    pub fn idempotency_key(&self) -> String {
        format!("cartero-campaign:{}:{}", self.delivery.0, self.row.0)
    }

    /// The metadata the MTA echoes in every event about this message (read back by
    /// `observe`), and `"bulk": true` for campaign mail, which makes the MTA add the RFC 8058
    /// List-Unsubscribe fields (inMail on), as for API injections.
    pub fn metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(DELIVERY_ID_KEY.into(), self.delivery.0.to_string().into());
        m.insert(LOG_ID_KEY.into(), self.row.0.into());
        if self.bulk {
            m.insert("bulk".into(), true.into());
        }
        m
    }
}

/// What the MTA said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handed {
    /// Spooled (or already spooled before, for a repeated key): the row is Taken.
    Taken { message_id: String },
    /// Refused for good (bad address, message too large...): the row fails with this text.
    Refused { reason: String },
    /// The validity ended before the MTA took the message, and it did not have it from an
    /// earlier hand-over: the row fails, never sent.
    Expired { reason: String },
}

/// Why a batch could not be handed over at all; the rows stay Pending and are tried again.
#[derive(Debug, thiserror::Error)]
#[error("MTA unavailable: {0}")]
pub struct Unavailable(pub String);

/// A boxed future, so the trait can be used as `dyn Injector`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hands messages to an MTA. One answer per message, in order. The batch is given by value:
/// the rendered bodies move into the MTA without a copy.
pub trait Injector: Send + Sync {
    fn inject(&self, batch: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<Handed>, Unavailable>>;
}

/// What handing over one message gave: its answer, or why the MTA could not be reached.
pub type OneAnswer = Result<Handed, String>;

/// Hands every message of `batch` over with `hand`, concurrently (the MTA commits a group of
/// messages per disk sync), and answers in order. When any message could not be handed
/// (`Err`) the whole batch is [`Unavailable`]: it comes back with the same idempotency keys,
/// and the MTA answers the messages it already took with their original ids.
pub async fn hand_each<F, Fut>(batch: Vec<Outgoing>, hand: F) -> Result<Vec<Handed>, Unavailable>
where
    F: Fn(Outgoing) -> Fut,
    Fut: Future<Output = OneAnswer> + Send + 'static,
{
    let n = batch.len();
    let mut set = tokio::task::JoinSet::new();
    for (i, o) in batch.into_iter().enumerate() {
        let one = hand(o);
        set.spawn(async move { (i, one.await) });
    }
    let mut answers: Vec<Option<Handed>> = vec![None; n];
    let mut transient = None;
    while let Some(done) = set.join_next().await {
        let (i, result) = done.map_err(|e| Unavailable(format!("injection task: {e}")))?;
        match result {
            Ok(h) => answers[i] = Some(h),
            Err(why) => transient = Some(why),
        }
    }
    if let Some(why) = transient {
        return Err(Unavailable(why));
    }
    answers
        .into_iter()
        .map(|a| a.ok_or_else(|| Unavailable("an injection gave no answer".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_and_metadata_name_the_row() {
        let o = Outgoing {
            delivery: DeliveryId(7),
            row: LogId(42),
            sender: "news@a.test".into(),
            recipient: "ana@b.test".into(),
            body: b"x".to_vec(),
            validity: Duration::from_secs(60),
            expires_at: None,
            pool: None,
            bulk: true,
        };
        assert_eq!(o.idempotency_key(), "cartero-campaign:7:42");
        let m = o.metadata();
        assert_eq!(m[DELIVERY_ID_KEY], "7");
        assert_eq!(m[LOG_ID_KEY], 42);
    }
}
