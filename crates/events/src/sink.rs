//! The [`EventSink`] trait and the in-process sinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, mpsc};

use crate::Event;

/// Something that takes events. The MTA calls [`EventSink::emit`] on its delivery path, so an
/// implementation must never block for long: hand the event to a queue or a background worker and
/// return. A sink that cannot keep up drops the event, counts it and logs, rather than stall delivery.
pub trait EventSink: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: &Event);
}

impl<T: EventSink + ?Sized> EventSink for Arc<T> {
    fn emit(&self, event: &Event) {
        (**self).emit(event);
    }
}

impl<T: EventSink + ?Sized> EventSink for Box<T> {
    fn emit(&self, event: &Event) {
        (**self).emit(event);
    }
}

/// Forwards every event to each of its sinks, in order.
#[derive(Default, Clone)]
pub struct Fanout {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl Fanout {
    /// An empty fan-out (drops everything until sinks are added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn push(&mut self, sink: Arc<dyn EventSink>) {
        self.sinks.push(sink);
    }

    /// Adds a sink, builder style.
    #[must_use]
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.push(sink);
        self
    }

    /// Number of sinks.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// True when no sink is attached.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl EventSink for Fanout {
    fn emit(&self, event: &Event) {
        for sink in &self.sinks {
            sink.emit(event);
        }
    }
}

enum ChannelTx {
    Bounded(mpsc::Sender<Event>),
    Unbounded(mpsc::UnboundedSender<Event>),
}

/// Hands events to one in-process consumer (the campaign layer) through a Tokio mpsc channel.
///
/// The bounded flavour drops events when the consumer lags by more than its capacity (counted in
/// [`ChannelSink::dropped`]); the unbounded flavour never drops but lets memory grow with the lag.
/// Events emitted after the receiver is gone are dropped silently (the consumer shut down).
pub struct ChannelSink {
    tx: ChannelTx,
    dropped: AtomicU64,
}

impl ChannelSink {
    /// A sink and its receiver, holding at most `capacity` (at least 1) undelivered events.
    pub fn bounded(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::from_tx(ChannelTx::Bounded(tx)), rx)
    }

    /// A sink and its receiver without a bound.
    pub fn unbounded() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::from_tx(ChannelTx::Unbounded(tx)), rx)
    }

    fn from_tx(tx: ChannelTx) -> Self {
        Self {
            tx,
            dropped: AtomicU64::new(0),
        }
    }

    /// Events dropped because the bounded channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventSink for ChannelSink {
    fn emit(&self, event: &Event) {
        match &self.tx {
            ChannelTx::Bounded(tx) => match tx.try_send(event.clone()) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event_id = %ev.event_id, "event channel full, event dropped");
                }
            },
            ChannelTx::Unbounded(tx) => {
                // A send error only means the consumer is gone.
                let _ = tx.send(event.clone());
            }
        }
    }
}

/// Publishes events to any number of live subscribers (`events tail`, dashboards). A subscriber that
/// lags by more than the capacity misses events (it sees `RecvError::Lagged`); nothing is kept for
/// subscribers that join later.
#[derive(Clone)]
pub struct BroadcastSink {
    tx: broadcast::Sender<Event>,
}

impl BroadcastSink {
    /// A broadcast sink keeping up to `capacity` (at least 1) events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// A new subscriber that receives events emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl EventSink for BroadcastSink {
    fn emit(&self, event: &Event) {
        // An error only means nobody is subscribed right now.
        let _ = self.tx.send(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use cartero_clock::ManualClock;

    fn ev(kind: EventType) -> Event {
        Event::new(kind, &ManualClock::new(1_700_000_000_000))
    }

    #[tokio::test]
    async fn fanout_reaches_every_sink_in_order() {
        let (a, mut ra) = ChannelSink::unbounded();
        let (b, mut rb) = ChannelSink::bounded(8);
        let fan = Fanout::new().with(Arc::new(a)).with(Arc::new(b));
        assert_eq!(fan.len(), 2);
        let e1 = ev(EventType::Reception);
        let e2 = ev(EventType::Delivery);
        fan.emit(&e1);
        fan.emit(&e2);
        assert_eq!(ra.recv().await.unwrap(), e1);
        assert_eq!(ra.recv().await.unwrap(), e2);
        assert_eq!(rb.recv().await.unwrap(), e1);
        assert_eq!(rb.recv().await.unwrap(), e2);
    }

    #[tokio::test]
    async fn bounded_channel_drops_and_counts_instead_of_blocking() {
        let (sink, mut rx) = ChannelSink::bounded(2);
        for _ in 0..5 {
            sink.emit(&ev(EventType::Delay));
        }
        assert_eq!(sink.dropped(), 3);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn emitting_after_receiver_is_gone_is_harmless() {
        let (sink, rx) = ChannelSink::bounded(1);
        drop(rx);
        sink.emit(&ev(EventType::Bounce));
        assert_eq!(sink.dropped(), 0);
    }

    #[tokio::test]
    async fn broadcast_reaches_all_subscribers() {
        let sink = BroadcastSink::new(16);
        let mut s1 = sink.subscribe();
        let mut s2 = sink.subscribe();
        let e = ev(EventType::Shaping);
        sink.emit(&e);
        assert_eq!(s1.recv().await.unwrap(), e);
        assert_eq!(s2.recv().await.unwrap(), e);
    }
}
