//! The injection path shared by SMTP and HTTP: validate and complete the message, spool it
//! durably, then queue its recipients. A message is acknowledged only after `Spool::insert`
//! returned, i.e. after the fsync barrier.

use crate::idempotency::{KeyHash, Keys, Lookup, MAX_KEY_LEN, Recorded};
use crate::queue::{Cmd, Msg, QRcpt, SchedulerHandle, domain_of};
use cartero_clock::SharedClock;
use cartero_events::{Event, EventSink};
use cartero_spool::{Envelope, MessageId, Spool, SpoolError};
use std::sync::Arc;
use std::time::Duration;

/// A message to inject.
#[derive(Debug, Clone, Default)]
pub struct Injection {
    /// Reverse path; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    /// RFC 5322 message, CRLF line endings.
    pub body: Vec<u8>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Requested validity; capped by `delivery.max_validity`.
    pub validity: Option<Duration>,
    /// Not to be sent after this time (ms since the epoch), whatever the validity: for a
    /// message whose validity counts from an earlier moment (a transactional call that waited
    /// in an outbox). Past it, recipients whose key is known are still answered as repeats
    /// (the MTA has them); fresh ones are refused with [`InjectError::Expired`], unspooled.
    pub expires_at: Option<u64>,
    pub pool: Option<String>,
    /// A trace header (`Received: ...\r\n`) to prepend, for SMTP injection.
    pub trace: Option<String>,
    /// One optional idempotency key per recipient (empty: none). A recipient whose key was
    /// injected before, within `delivery.idempotency_window`, is not spooled again: its
    /// original id is returned (SPEC §2.1).
    pub idempotency_keys: Vec<Option<String>>,
}

/// The spooled message: its id and one id per recipient (`<message id>.<index>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Injected {
    pub message_id: String,
    pub recipient_ids: Vec<String>,
    /// Per recipient: `true` when its idempotency key was known and the original id returned.
    pub repeated: Vec<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("no recipients")]
    NoRecipients,
    #[error("invalid recipient address {0:?}")]
    BadRecipient(String),
    #[error("invalid sender address {0:?}")]
    BadSender(String),
    #[error("message is empty")]
    EmptyBody,
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("idempotency keys: {0}")]
    BadKeys(String),
    #[error("an injection with idempotency key {0:?} is in progress; retry")]
    KeyInFlight(String),
    /// The injection's task ended without an answer (a panic, or the runtime shutting down).
    #[error("the injection did not finish: {0}")]
    Task(String),
    /// `expires_at` had passed for a recipient the MTA did not have: nothing was spooled.
    #[error("the message expired at {at} (ms since the epoch) before it was injected")]
    Expired { at: u64 },
}

impl InjectError {
    /// True when retrying the same request can succeed (the spool failed, not the input).
    pub fn is_transient(&self) -> bool {
        match self {
            // The message's events do not fit the outbox: the same request fails again.
            InjectError::Spool(SpoolError::EventTooLarge(_)) => false,
            InjectError::Spool(_) | InjectError::KeyInFlight(_) | InjectError::Task(_) => true,
            _ => false,
        }
    }
}

pub(crate) struct Injector {
    pub spool: Spool,
    pub sched: SchedulerHandle,
    pub clock: SharedClock,
    pub events: Arc<dyn EventSink>,
    pub hostname: String,
    pub default_validity: Duration,
    pub max_validity: Duration,
    pub keys: Arc<Keys>,
    pub idempotency_window: Duration,
}

/// What the keys of an injection said: which recipients were seen before, which keys this
/// injection claimed (to record or give back).
struct KeyCheck {
    /// Per requested recipient.
    known: Vec<Option<Recorded>>,
    /// Per requested recipient; empty when the injection has no keys.
    claimed: Vec<Option<KeyHash>>,
}

/// Keeps the recipients at positions `keep` (ascending), in order.
fn keep_only(recipients: &mut Vec<String>, keep: &[usize]) {
    let mut all = std::mem::take(recipients);
    *recipients = keep.iter().map(|&i| std::mem::take(&mut all[i])).collect();
}

fn claimed_hashes(check: &KeyCheck) -> Vec<KeyHash> {
    check.claimed.iter().flatten().copied().collect()
}

/// An id per requested recipient, in request order: the original for repeats, the new
/// message's for the rest (`fresh` lists their request positions in spool order).
fn answer(
    id: Option<MessageId>,
    known: &[Option<Recorded>],
    fresh: &[usize],
    repeated: Vec<bool>,
) -> Injected {
    // `fresh` is in request order, so the n-th recipient not known is recipient n of `id`.
    debug_assert_eq!(fresh.len(), known.iter().filter(|k| k.is_none()).count());
    let mut next = 0u32;
    let recipient_ids: Vec<String> = known
        .iter()
        .map(|k| match (k, id) {
            (Some(r), _) => format!("{}.{}", r.message, r.index),
            (None, Some(id)) => {
                next += 1;
                format!("{id}.{}", next - 1)
            }
            (None, None) => String::new(),
        })
        .collect();
    let first_known = known.iter().flatten().next().map(|r| r.message);
    let message_id = id
        .or(first_known)
        .map(|m| m.to_string())
        .unwrap_or_default();
    Injected {
        message_id,
        recipient_ids,
        repeated,
    }
}

/// A mailbox must have a local part and a domain, and no characters that would break the
/// envelope on the wire.
pub(crate) fn valid_address(a: &str) -> bool {
    cartero_address::is_mailbox(a)
}

impl Injector {
    /// Claims the keys of `inj`; a key in flight elsewhere gives all claims back.
    fn check_keys(&self, inj: &Injection, now: u64) -> Result<KeyCheck, InjectError> {
        let n = inj.recipients.len();
        let mut check = KeyCheck {
            known: vec![None; n],
            claimed: Vec::new(),
        };
        if inj.idempotency_keys.is_empty() {
            return Ok(check);
        }
        check.claimed = vec![None; n];
        if inj.idempotency_keys.len() != n {
            let e = format!("{} keys for {n} recipients", inj.idempotency_keys.len());
            return Err(InjectError::BadKeys(e));
        }
        for (i, key) in inj.idempotency_keys.iter().enumerate() {
            let Some(key) = key else { continue };
            if key.is_empty() || key.len() > MAX_KEY_LEN {
                let e = format!("key {i} must be 1 to {MAX_KEY_LEN} bytes");
                self.keys.release(&claimed_hashes(&check));
                return Err(InjectError::BadKeys(e));
            }
            let h = KeyHash::of(key);
            match self.keys.claim(h, now) {
                Lookup::Claimed => check.claimed[i] = Some(h),
                Lookup::Known(r) => check.known[i] = Some(r),
                Lookup::InFlight => {
                    self.keys.release(&claimed_hashes(&check));
                    return Err(InjectError::KeyInFlight(key.clone()));
                }
            }
        }
        Ok(check)
    }

    pub async fn inject(&self, inj: Injection) -> Result<Injected, InjectError> {
        if inj.recipients.is_empty() {
            return Err(InjectError::NoRecipients);
        }
        if let Some(bad) = inj.recipients.iter().find(|r| !valid_address(r)) {
            return Err(InjectError::BadRecipient(bad.clone()));
        }
        if !inj.sender.is_empty() && !valid_address(&inj.sender) {
            return Err(InjectError::BadSender(inj.sender));
        }
        if inj.body.is_empty() {
            return Err(InjectError::EmptyBody);
        }
        let now = self.clock.now_ms();
        let check = self.check_keys(&inj, now)?;
        if let Some(at) = inj.expires_at.filter(|&at| at <= now)
            && check.known.iter().any(Option::is_none)
        {
            self.keys.release(&claimed_hashes(&check));
            return Err(InjectError::Expired { at });
        }
        let result = self.spool_new(inj, &check, now).await;
        if result.is_err() {
            self.keys.release(&claimed_hashes(&check));
        }
        result
    }

    /// Spools the recipients whose keys were not known, records their keys, queues them, and
    /// answers with an id per requested recipient (the original one for repeats).
    async fn spool_new(
        &self,
        mut inj: Injection,
        check: &KeyCheck,
        now: u64,
    ) -> Result<Injected, InjectError> {
        let repeated: Vec<bool> = check.known.iter().map(Option::is_some).collect();
        let requested = inj.recipients.len();
        let fresh: Vec<usize> = (0..requested).filter(|&i| !repeated[i]).collect();
        if fresh.is_empty() {
            return Ok(answer(None, &check.known, &[], repeated));
        }
        let claimed_of = |i: usize| check.claimed.get(i).copied().flatten();
        let hashes: Vec<String> = match check.claimed.is_empty() {
            true => Vec::new(),
            false => fresh
                .iter()
                .map(|&i| claimed_of(i).map_or_else(String::new, KeyHash::to_hex))
                .collect(),
        };
        if fresh.len() < requested {
            keep_only(&mut inj.recipients, &fresh);
        }
        let body = self.complete(inj.body, inj.trace.as_deref(), now);
        let validity = inj
            .validity
            .unwrap_or(self.default_validity)
            .min(self.max_validity);
        let env = Envelope {
            sender: inj.sender,
            recipients: inj.recipients,
            received_at: now,
            expires_at: now
                .saturating_add(u64::try_from(validity.as_millis()).unwrap_or(u64::MAX))
                .min(inj.expires_at.unwrap_or(u64::MAX)),
            metadata: inj.metadata,
            pool: inj.pool,
            idempotency: hashes,
        };
        let size = body.len() as u64;
        let (id, receptions) = self.store(&env, body, size).await?;
        let keep = u64::try_from(self.idempotency_window.as_millis()).unwrap_or(u64::MAX);
        let records: Vec<(KeyHash, Recorded)> = fresh
            .iter()
            .enumerate()
            .filter_map(|(index, &i)| {
                let r = Recorded {
                    message: id,
                    index: u32::try_from(index).ok()?,
                    expires_at: now.saturating_add(keep),
                };
                Some((claimed_of(i)?, r))
            })
            .collect();
        // The message is spooled: it goes out whatever happens to the key file, whose failure
        // only weakens the guarantee across a restart (the keys stay known in memory).
        if let Err(e) = self.keys.record(records).await {
            tracing::error!(error = %e, message = %id, "idempotency keys not written");
            metrics::counter!("cartero_idempotency_write_errors_total").increment(1);
        }
        metrics::counter!("cartero_messages_accepted_total").increment(1);
        let msg = Arc::new(Msg { id, env, size });
        let rcpts: Vec<QRcpt> = (0..msg.env.recipients.len() as u32)
            .map(|idx| QRcpt {
                msg: msg.clone(),
                idx,
                domain: domain_of(&msg.env.recipients[idx as usize]).into(),
                attempts: 0,
                held: false,
                next_attempt: now,
                last: None,
            })
            .collect();
        for e in &receptions {
            self.events.emit(e);
        }
        self.sched.send(Cmd::Enqueue(rcpts)).await;
        Ok(answer(Some(id), &check.known, &fresh, repeated))
    }

    /// Spools the message; returns its id and its `reception` events. With an outbox those are
    /// written in the batch that stores the message (made from its id on the spool's writer
    /// thread), so no message is spooled without them.
    async fn store(
        &self,
        env: &Envelope,
        body: Vec<u8>,
        size: u64,
    ) -> Result<(MessageId, Vec<Event>), SpoolError> {
        let mut receptions = crate::queue::event::receptions(env, size, self.clock.as_ref());
        let id = match self.spool.outbox_enabled() {
            true => {
                let make = crate::outbox::encode_receptions(receptions.clone());
                self.spool
                    .insert_with_events(env, body.into(), make)
                    .await?
            }
            false => self.spool.insert(env, body.into()).await?,
        };
        for e in &mut receptions {
            e.message_id = Some(id.to_string());
        }
        Ok((id, receptions))
    }

    /// Adds the trace header, a Message-ID and Date when missing (RFC 6409 §8). DKIM signing
    /// happens at send time (`crate::prepare`), over the per-recipient header fields too.
    fn complete(&self, body: Vec<u8>, trace: Option<&str>, now: u64) -> Vec<u8> {
        let mut extra = String::new();
        let headers = header_block(&body);
        if !has_header(headers, b"message-id") {
            extra.push_str(&format!(
                "Message-ID: <{:016x}{:08x}@{}>\r\n",
                now,
                fastrand::u32(..),
                self.hostname
            ));
        }
        if !has_header(headers, b"date") {
            let date = chrono::DateTime::from_timestamp_millis(now as i64).unwrap_or_default();
            extra.push_str(&format!(
                "Date: {}\r\n",
                date.format("%a, %d %b %Y %H:%M:%S +0000")
            ));
        }
        if trace.is_none() && extra.is_empty() {
            return body;
        }
        let trace_len = trace.map_or(0, str::len);
        let mut msg = Vec::with_capacity(body.len() + extra.len() + trace_len);
        if let Some(t) = trace {
            msg.extend_from_slice(t.as_bytes());
        }
        msg.extend_from_slice(extra.as_bytes());
        msg.extend_from_slice(&body);
        msg
    }
}

/// The header section of a message (up to the first empty line).
pub(crate) fn header_block(msg: &[u8]) -> &[u8] {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| msg.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(msg.len());
    &msg[..end]
}

pub(crate) fn has_header(headers: &[u8], name: &[u8]) -> bool {
    headers.split(|&b| b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
    })
}

/// Takes the `X-Cartero-Pool` header out of an SMTP-injected message: it chooses the egress
/// pool and is private to the sender, so it is not passed on. Returns the pool and the message.
pub(crate) fn take_pool_header(msg: Vec<u8>) -> (Option<String>, Vec<u8>) {
    const NAME: &[u8] = b"x-cartero-pool";
    let headers_len = header_block(&msg).len();
    let mut start = 0;
    while start < headers_len {
        let end = msg[start..headers_len]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(headers_len, |p| start + p + 1);
        let line = &msg[start..end];
        if line.len() > NAME.len()
            && line[..NAME.len()].eq_ignore_ascii_case(NAME)
            && line[NAME.len()] == b':'
        {
            let value = String::from_utf8_lossy(&line[NAME.len() + 1..])
                .trim()
                .to_string();
            let mut rest = msg[..start].to_vec();
            rest.extend_from_slice(&msg[end..]);
            return ((!value.is_empty()).then_some(value), rest);
        }
        start = end;
    }
    (None, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_validated() {
        assert!(valid_address("a@b.test"));
        assert!(valid_address("\"odd\"@b.test"));
        assert!(!valid_address("no-at"));
        assert!(!valid_address("@b.test"));
        assert!(!valid_address("a@"));
        assert!(!valid_address("a b@c.test"));
        assert!(!valid_address("a@c.test\r\nRCPT TO:<x@y>"));
    }

    #[test]
    fn pool_header_is_read_and_removed_but_only_from_the_header() {
        let m =
            b"From: a@b\r\nX-Cartero-Pool:  news \r\nSubject: s\r\n\r\nX-Cartero-Pool: body\r\n"
                .to_vec();
        let (pool, rest) = take_pool_header(m);
        assert_eq!(pool.as_deref(), Some("news"));
        assert_eq!(
            rest,
            b"From: a@b\r\nSubject: s\r\n\r\nX-Cartero-Pool: body\r\n"
        );
        let m = b"From: a@b\r\n\r\nX-Cartero-Pool: body\r\n".to_vec();
        let (pool, rest) = take_pool_header(m.clone());
        assert_eq!((pool, rest), (None, m));
    }

    #[test]
    fn header_detection_is_case_insensitive_and_stops_at_body() {
        let m = b"From: a@b\r\nmessage-ID: <x@y>\r\n\r\nDate: not a header\r\n";
        let h = header_block(m);
        assert!(has_header(h, b"message-id"));
        assert!(!has_header(h, b"date"));
    }
}
