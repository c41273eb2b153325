//! Building the bytes of one outgoing transaction: the per-recipient header fields (inMail token,
//! List-Unsubscribe) in front of the stored message, then the DKIM signature over the result, so
//! the signature covers the per-recipient fields. Signing therefore happens at send time.
//!
//! Without DKIM keys and without inMail the stored bytes are sent as they are (a reference-counted
//! clone, no copy): the fast path the benchmarks measure.

use crate::inmail::InMail;
use crate::queue::Msg;
use bytes::Bytes;
use cartero_clock::SharedClock;
use cartero_dkim::Signer;
use std::sync::Arc;

/// What goes on the wire for one transaction.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The reverse path for MAIL FROM.
    pub sender: String,
    pub body: Bytes,
}

pub(crate) struct Preparer {
    pub signer: Option<Arc<Signer>>,
    pub inmail: Option<Arc<InMail>>,
    pub clock: SharedClock,
}

/// True when the message was injected as bulk mail (metadata `"bulk": true`).
fn is_bulk(msg: &Msg) -> bool {
    msg.env.metadata.get("bulk") == Some(&serde_json::Value::Bool(true))
}

impl Preparer {
    /// With inMail every recipient has its own return path and headers, so transactions carry
    /// one recipient each (VERP).
    pub fn one_recipient_per_transaction(&self) -> bool {
        self.inmail.is_some()
    }

    /// The transaction for recipient `idx` of `msg` whose stored bytes are `stored`, sent from
    /// egress source `source`. `idx` and `source` only matter with inMail, where batches hold one
    /// recipient and the token names the source.
    pub fn prepare(&self, msg: &Msg, idx: u32, source: &str, stored: &Bytes) -> Prepared {
        let mut sender = msg.env.sender.clone();
        let mut extra = String::new();
        if let Some(inmail) = &self.inmail {
            let rcpt = msg
                .env
                .recipients
                .get(idx as usize)
                .map_or("", String::as_str);
            let out = inmail.outgoing(
                msg.id.0,
                idx,
                rcpt,
                source,
                is_bulk(msg),
                crate::inject::header_block(stored),
            );
            // A null reverse path stays null: replies to it must never be generated (RFC 5321 §4.5.5).
            if !sender.is_empty() {
                sender = out.sender;
            }
            extra = out.headers;
        }
        let Some(signer) = &self.signer else {
            return Prepared {
                sender,
                body: join(&extra, stored),
            };
        };
        let unsigned = join(&extra, stored);
        let body = match signer.sign(&unsigned, self.clock.now_ms() / 1000) {
            Ok(Some(sig)) => join(&sig, &unsigned),
            Ok(None) => unsigned,
            Err(e) => {
                // An unsignable message still goes out unsigned rather than being lost.
                tracing::warn!(message = %msg.id, error = %e, "DKIM signing failed; sending unsigned");
                unsigned
            }
        };
        Prepared { sender, body }
    }
}

fn join(head: &str, rest: &Bytes) -> Bytes {
    if head.is_empty() {
        return rest.clone();
    }
    let mut v = Vec::with_capacity(head.len() + rest.len());
    v.extend_from_slice(head.as_bytes());
    v.extend_from_slice(rest);
    v.into()
}
