//! Test support for the MTA's in-process integration tests: a scripted SMTP sink, a raw SMTP
//! client, a test DNS server and an MTA started on a manual clock with an in-process event channel.
//! Synchronisation is always by awaiting something (an event, a message) under a timeout.
#![allow(dead_code)]

pub mod client;
pub mod inmail;
pub mod sink;

use cartero_clock::ManualClock;
use cartero_dns::testing::{TestDnsServer, Zone};
use cartero_events::{ChannelSink, Event, EventSink, EventType};
use cartero_mta::{Injected, Injection, Mta, MtaConfig, StartOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

#[allow(unused_imports)]
pub use client::RawClient;
#[allow(unused_imports)]
pub use sink::{Rules, Sink, SinkMessage};

/// Start of the manual clock (2023-11-14T22:13:20Z).
pub const T0: u64 = 1_700_000_000_000;
/// Longest wait for anything a test awaits.
pub const WAIT: Duration = Duration::from_secs(15);

/// `example.test` (MX 10 mx.example.test → 127.0.0.1), the domain most tests send to.
pub fn example_zone() -> Zone {
    Zone::new("example.test")
        .mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", "127.0.0.1")
}

/// A small RFC 5322 message without Message-ID and Date (the MTA must add them).
pub fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@origin.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello {to}.\r\n"
    )
    .into_bytes()
}

/// Events received so far, plus the channel to await more.
pub struct Events {
    rx: UnboundedReceiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    pub fn channel() -> (Arc<dyn EventSink>, Events) {
        let (sink, rx) = ChannelSink::unbounded();
        (
            Arc::new(sink),
            Events {
                rx,
                seen: Vec::new(),
            },
        )
    }

    fn pull(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }

    /// Every event seen so far (after taking what is already in the channel).
    pub fn all(&mut self) -> &[Event] {
        self.pull();
        &self.seen
    }

    /// Events of `kind` seen so far.
    pub fn of(&mut self, kind: EventType) -> Vec<Event> {
        self.pull();
        self.seen
            .iter()
            .filter(|e| e.r#type == kind)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` events of `kind` arrived; returns all of that kind. Panics after
    /// [`WAIT`] with the events seen, so a failure says what happened instead.
    pub async fn wait_for(&mut self, kind: EventType, n: usize) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.of(kind);
            if got.len() >= n {
                return got;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                Ok(None) | Err(_) => panic!(
                    "waited for {n} {kind:?} events, got {}; all events: {:#?}",
                    got.len(),
                    self.seen
                ),
            }
        }
    }

    /// Waits for one event of `kind` for the recipient `rcpt`.
    pub async fn wait_rcpt(&mut self, kind: EventType, rcpt: &str) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.pull();
            if let Some(e) = self
                .seen
                .iter()
                .find(|e| e.r#type == kind && e.rcpt_to.as_deref() == Some(rcpt))
            {
                return e.clone();
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                Ok(None) | Err(_) => {
                    panic!("no {kind:?} event for {rcpt}; all events: {:#?}", self.seen)
                }
            }
        }
    }
}

/// A sink, a DNS server, a manual clock and an MTA wired together.
pub struct Env {
    pub mta: Arc<Mta>,
    pub clock: ManualClock,
    pub events: Events,
    pub sink: Sink,
    pub dns: TestDnsServer,
    pub cfg: MtaConfig,
    pub dir: tempfile::TempDir,
    /// Outbox consumers the MTA is (re)started with.
    pub event_outbox: Vec<String>,
}

/// The test configuration: loopback listeners on free ports, DNS at `dns`, remote MX port
/// `sink_port`, short client timeouts.
pub fn test_config(dir: &std::path::Path, dns: SocketAddr, sink_port: u16) -> MtaConfig {
    let mut cfg = MtaConfig {
        hostname: "mta.test".into(),
        data_dir: dir.join("data"),
        ..MtaConfig::default()
    };
    cfg.smtp.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    cfg.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.delivery.port = sink_port;
    cfg.delivery.dns.nameservers = vec![dns];
    cfg.delivery.dns.timeout = Duration::from_secs(2);
    cfg.delivery.dns.attempts = 1;
    let t = &mut cfg.delivery.timeouts;
    let s = Duration::from_secs(10);
    (t.connect, t.banner, t.ehlo, t.starttls) = (s, s, s, s);
    (t.mail, t.rcpt, t.data, t.data_end) = (s, s, s, s);
    t.idle = Duration::from_secs(2);
    cfg.delivery.shutdown_grace = Duration::from_secs(10);
    // On the manual clock a cold start's pacing would never let the second message go: tests
    // that are not about pacing send unpaced, as to a site that was configured unlimited.
    cfg.shaping.adaptive.aimd.start_rate = 0.0;
    cfg
}

/// Starts an MTA on `clock` with an in-process event channel.
pub async fn start_mta(cfg: MtaConfig, clock: &ManualClock) -> (Arc<Mta>, Events) {
    start_mta_with(cfg, clock, Vec::new()).await
}

/// [`start_mta`] with the durable event outbox read by `event_outbox`.
pub async fn start_mta_with(
    cfg: MtaConfig,
    clock: &ManualClock,
    event_outbox: Vec<String>,
) -> (Arc<Mta>, Events) {
    let (sink, events) = Events::channel();
    let opts = StartOptions {
        clock: Arc::new(clock.clone()),
        sinks: vec![sink],
        event_outbox,
        ..StartOptions::default()
    };
    let mta = Mta::start(cfg, opts).await.expect("MTA starts");
    (mta, events)
}

impl Env {
    /// Starts everything with `example_zone()` plus `zones`; `tweak` edits the config first.
    pub async fn start(zones: Vec<Zone>, tweak: impl FnOnce(&mut MtaConfig)) -> Env {
        Env::start_full(zones, Vec::new(), tweak).await
    }

    /// [`Env::start`] (no extra zones) with the event outbox read by `consumers`.
    pub async fn start_with_outbox(
        consumers: Vec<String>,
        tweak: impl FnOnce(&mut MtaConfig),
    ) -> Env {
        Env::start_full(vec![], consumers, tweak).await
    }

    async fn start_full(
        zones: Vec<Zone>,
        event_outbox: Vec<String>,
        tweak: impl FnOnce(&mut MtaConfig),
    ) -> Env {
        let sink = Sink::start().await;
        let mut all = vec![example_zone()];
        all.extend(zones);
        let dns = TestDnsServer::start(all).await.expect("test DNS starts");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path(), dns.addr(), sink.port());
        tweak(&mut cfg);
        // Also when the tweak replaced [shaping] (see test_config).
        cfg.shaping.adaptive.aimd.start_rate = 0.0;
        let clock = ManualClock::new(T0);
        let (mta, events) = start_mta_with(cfg.clone(), &clock, event_outbox.clone()).await;
        Env {
            mta,
            clock,
            events,
            sink,
            dns,
            cfg,
            dir,
            event_outbox,
        }
    }

    /// Shuts the MTA down and starts a new one on the same data directory and clock.
    pub async fn restart(&mut self) {
        self.mta.shutdown().await;
        let outbox = self.event_outbox.clone();
        let (mta, events) = start_mta_with(self.cfg.clone(), &self.clock, outbox).await;
        self.mta = mta;
        self.events = events;
    }

    /// Injects `message(to[0])` from `sender@origin.test` to `to` through the Rust API.
    pub async fn inject(&self, to: &[&str]) -> Injected {
        self.inject_with(to, |_| {}).await
    }

    pub async fn inject_with(&self, to: &[&str], tweak: impl FnOnce(&mut Injection)) -> Injected {
        let mut inj = Injection {
            sender: "sender@origin.test".into(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            body: message(to.first().copied().unwrap_or(""), "test"),
            ..Injection::default()
        };
        tweak(&mut inj);
        self.mta.inject(inj).await.expect("injection accepted")
    }

    /// Moves the manual clock and makes the scheduler look at due recipients.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.mta.tick();
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.mta.smtp_addrs()[0]
    }

    pub fn http_base(&self) -> String {
        format!("http://{}", self.mta.http_addr().expect("HTTP listener"))
    }
}
