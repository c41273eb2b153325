//! The durable event outbox as the MTA uses it: events serialized to JSON and written through the
//! spool (with the recipient state they go with, when there is one), and read back, decoded, by
//! the in-process consumers named in [`crate::StartOptions::event_outbox`]. See "Event outbox"
//! in docs/events.md.

use bytes::Bytes;
use cartero_events::Event;
use cartero_spool::{MessageId, OutboxReader, Position, Spool, SpoolError};

/// Encodes an event for the outbox. `Event` always serializes; should it ever fail, the event
/// still reaches the in-memory sinks and the failure is logged.
pub(crate) fn encode(e: &Event) -> Option<Bytes> {
    match serde_json::to_vec(e) {
        Ok(v) => Some(Bytes::from(v)),
        Err(err) => {
            tracing::error!(event_id = %e.event_id, error = %err, "event not encodable for the outbox");
            None
        }
    }
}

/// The reception events of a message about to be spooled, stamped with its id once the spool
/// gives it one (on the spool's writer thread, in the batch that stores the message).
pub(crate) fn encode_receptions(
    events: Vec<Event>,
) -> impl FnOnce(MessageId) -> Vec<Bytes> + Send + 'static {
    move |id| {
        let id = id.to_string();
        events
            .into_iter()
            .filter_map(|mut e| {
                e.message_id = Some(id.clone());
                encode(&e)
            })
            .collect()
    }
}

/// Writes events that go with no recipient state. A no-op without an outbox.
#[derive(Clone)]
pub(crate) struct Outbox(pub Spool);

impl Outbox {
    pub fn enabled(&self) -> bool {
        self.0.outbox_enabled()
    }

    /// Returns once `events` are durable in the outbox.
    pub async fn persist(&self, events: &[Event]) -> Result<(), SpoolError> {
        if !self.enabled() || events.is_empty() {
            return Ok(());
        }
        self.0
            .append_events(events.iter().filter_map(encode).collect())
            .await
    }
}

/// One durable event and where it ends in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Give this to [`EventOutbox::ack`] once the event is stored by the consumer.
    pub position: Position,
    pub event: Event,
}

/// Reads the MTA's events for one consumer: every event the MTA emitted about a recipient or
/// an inMail report, at least once, in commit order, also across a crash. Events not
/// acknowledged before a restart come again after it; deduplicate by `event_id`.
#[derive(Debug)]
pub struct EventOutbox {
    reader: OutboxReader,
    /// (last position returned, last undecodable entry after it in the same batch): acknowledging
    /// the former acknowledges the latter, so skipped entries do not come back.
    skipped_tail: Option<(Position, Position)>,
}

impl EventOutbox {
    pub(crate) fn new(reader: OutboxReader) -> Self {
        EventOutbox {
            reader,
            skipped_tail: None,
        }
    }

    /// The consumer name.
    pub fn consumer(&self) -> &str {
        self.reader.consumer()
    }

    /// Waits for durable events past the last one returned and returns up to `max` (at least
    /// one). Entries that do not decode as events, and damaged outbox records, are logged,
    /// counted (`cartero_outbox_skipped_total`) and skipped. [`SpoolError::Closed`] once the
    /// spool stopped and everything was read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<OutboxEvent>, SpoolError> {
        loop {
            let entries = match self.reader.next_batch(max).await {
                Ok(e) => e,
                Err(e @ SpoolError::OutboxDamaged { .. }) => {
                    tracing::error!(consumer = self.consumer(), error = %e, "outbox record skipped");
                    metrics::counter!("cartero_outbox_skipped_total").increment(1);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(entries.len());
            let mut last_bad = None;
            for entry in entries {
                match serde_json::from_slice::<Event>(&entry.data) {
                    Ok(event) => {
                        last_bad = None;
                        out.push(OutboxEvent {
                            position: entry.position,
                            event,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(consumer = self.consumer(), position = %entry.position,
                            error = %e, "outbox entry is not an event: skipped");
                        metrics::counter!("cartero_outbox_skipped_total").increment(1);
                        last_bad = Some(entry.position);
                    }
                }
            }
            match (out.last(), last_bad) {
                (Some(good), bad) => {
                    self.skipped_tail = bad.map(|b| (good.position, b));
                    return Ok(out);
                }
                // Nothing usable in this batch: move past it and wait for more.
                (None, Some(bad)) => self.reader.ack(bad).await?,
                (None, None) => {}
            }
        }
    }

    /// Durably records that the consumer stored every event up to `upto`; after a restart
    /// reading resumes after it.
    pub async fn ack(&mut self, upto: Position) -> Result<(), SpoolError> {
        let upto = match self.skipped_tail {
            Some((good, bad)) if good == upto => bad,
            _ => upto,
        };
        self.reader.ack(upto).await
    }
}

/// Exports the outbox gauges; called with the queue gauges.
pub(crate) fn export_gauges(spool: &Spool) {
    let Some(s) = spool.outbox_stats() else {
        return;
    };
    metrics::gauge!("cartero_outbox_entries").set(s.entries as f64);
    metrics::gauge!("cartero_outbox_bytes").set(s.bytes as f64);
    metrics::gauge!("cartero_outbox_segments").set(s.segments as f64);
    for (consumer, lag) in s.lag_bytes {
        metrics::gauge!("cartero_outbox_lag_bytes", "consumer" => consumer).set(lag as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_events::EventType;
    use cartero_spool::SpoolOptions;
    use std::time::Duration;

    fn opts() -> SpoolOptions {
        SpoolOptions {
            outbox_consumers: vec!["c".into()],
            ..SpoolOptions::default()
        }
    }

    fn event(n: u64) -> Bytes {
        let clock = cartero_clock::ManualClock::new(1_700_000_000_000 + n);
        let mut e = Event::new(EventType::Delivery, &clock);
        e.rcpt_to = Some(format!("r{n}@example.test"));
        encode(&e).expect("encodes")
    }

    async fn batch(r: &mut EventOutbox) -> Vec<OutboxEvent> {
        tokio::time::timeout(Duration::from_secs(10), r.next_batch(10))
            .await
            .expect("events in time")
            .expect("readable")
    }

    fn lag(spool: &Spool) -> u64 {
        let stats = spool.outbox_stats().expect("outbox on");
        stats.lag_bytes.iter().map(|(_, l)| *l).sum()
    }

    #[tokio::test]
    async fn undecodable_entries_are_skipped_and_acknowledged_past() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), opts()).unwrap();
        let junk = || Bytes::from_static(b"{not an event");
        let mut r = EventOutbox::new(spool.outbox_reader("c").unwrap());
        spool.append_events(vec![junk(), junk()]).await.unwrap();
        let waiting = tokio::spawn(async move { (batch(&mut r).await, r) });
        // A batch of nothing but junk is acknowledged past while the reader waits on.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while lag(&spool) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "junk never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        spool
            .append_events(vec![junk(), event(1), junk()])
            .await
            .unwrap();
        let (got, mut r) = waiting.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.rcpt_to.as_deref(), Some("r1@example.test"));
        r.ack(got[0].position).await.unwrap();
        assert_eq!(
            lag(&spool),
            0,
            "the junk after the event is acknowledged with it"
        );
        drop(r);
        spool.append_events(vec![event(2)]).await.unwrap();
        let mut r = EventOutbox::new(spool.outbox_reader("c").unwrap());
        let got = batch(&mut r).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.rcpt_to.as_deref(), Some("r2@example.test"));
        drop(r);
        spool.close().await.unwrap();
    }
}
