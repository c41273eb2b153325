//! Support for the adaptive-shaping end-to-end tests: the provider simulator on loopback, an MTA
//! on the system clock (the pacer and the simulator's rate windows run in real time, which a
//! manual clock would stall), loopback alias checks and small event helpers.
#![allow(dead_code)]

use crate::support::{Events, example_zone, message, test_config};
use cartero_dns::testing::TestDnsServer;
use cartero_events::{Event, EventType};
use cartero_mta::config::SourceConfig;
use cartero_mta::{Injected, Injection, Mta, MtaConfig, StartOptions};
use cartero_shaping::Scope;
use cartero_simulator::{Scenario, Simulator};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Whether a local address can be bound (loopback aliases beyond 127.0.0.1 work on Linux
/// without setup, not everywhere).
pub fn can_bind(ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// True when every address in `ips` can be bound. Otherwise prints why the test is skipped and
/// returns false — or fails the test under `CI=true`, where the aliases must be available.
pub fn require_aliases(test: &str, ips: &[&str]) -> bool {
    let missing: Vec<&str> = ips.iter().copied().filter(|ip| !can_bind(ip)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: cannot bind loopback alias(es) {missing:?}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why} (required under CI=true)");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// A source bound to `ip`.
pub fn source(name: &str, ip: Option<&str>, warmup: bool) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        ip: ip.map(|i| i.parse().expect("valid source ip")),
        helo: None,
        warmup,
    }
}

/// Starts the simulator on the system clock from scenario TOML.
pub async fn start_sim(toml_text: &str) -> Simulator {
    let scenario = Scenario::parse(toml_text).expect("valid scenario");
    Simulator::start(scenario).await.expect("simulator starts")
}

/// An MTA on the system clock whose domains are routed statically (no MX lookups: the DNS
/// server is only there so nothing could ever reach the system resolver).
pub struct RealEnv {
    pub mta: Arc<Mta>,
    pub events: Events,
    pub cfg: MtaConfig,
    pub dns: TestDnsServer,
    pub dir: tempfile::TempDir,
}

/// Starts an MTA on the system clock with an in-process event channel.
pub async fn start_real(cfg: MtaConfig) -> (Arc<Mta>, Events) {
    let (sink, events) = Events::channel();
    let opts = StartOptions {
        sinks: vec![sink],
        ..StartOptions::default()
    };
    let mta = Mta::start(cfg, opts).await.expect("MTA starts");
    (mta, events)
}

impl RealEnv {
    /// `routes` maps domains to `host:port`; `tweak` edits the config before the start.
    pub async fn start(routes: &[(&str, SocketAddr)], tweak: impl FnOnce(&mut MtaConfig)) -> Self {
        let dns = TestDnsServer::start(vec![example_zone()])
            .await
            .expect("test DNS starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = test_config(dir.path(), dns.addr(), 25);
        for (domain, addr) in routes {
            cfg.delivery
                .routes
                .insert(domain.to_string(), addr.to_string());
        }
        tweak(&mut cfg);
        let (mta, events) = start_real(cfg.clone()).await;
        Self {
            mta,
            events,
            cfg,
            dns,
            dir,
        }
    }

    /// Shuts the MTA down and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.mta.shutdown().await;
        let (mta, events) = start_real(self.cfg.clone()).await;
        self.mta = mta;
        self.events = events;
    }

    /// One message to one recipient.
    pub async fn inject(&self, to: &str) -> Injected {
        let inj = Injection {
            sender: "sender@origin.test".into(),
            recipients: vec![to.to_string()],
            body: message(to, "adaptive"),
            ..Injection::default()
        };
        self.mta.inject(inj).await.expect("injection accepted")
    }

    /// One message per recipient of `domain`, all released at once: the domain is suspended while
    /// they are injected (each injection is an fsync'd spool insert, slow on a loaded disk) and
    /// resumed after, so the whole backlog reaches the ready queues together and the provider's
    /// limits are met however slowly the messages trickled in.
    pub async fn inject_backlog(
        &self,
        domain: &str,
        recipients: impl IntoIterator<Item = String>,
    ) -> Vec<Injected> {
        let scope = Scope::Domain(domain.into());
        self.mta
            .suspend(scope.clone(), None, "build backlog".into())
            .await
            .expect("suspend answered");
        let mut injected = Vec::new();
        for to in recipients {
            assert!(
                to.ends_with(&format!("@{domain}")),
                "{to} is not held by the suspension of {domain}"
            );
            injected.push(self.inject(&to).await);
        }
        assert!(
            self.mta.resume(scope).await.is_some(),
            "the backlog's suspension of {domain} was in place until now"
        );
        injected
    }
}

/// The `shaping` events whose action is `action`.
pub fn shaping_actions<'a>(events: &'a [Event], action: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.r#type == EventType::Shaping)
        .filter(|e| {
            e.shaping
                .as_ref()
                .and_then(|s| s.get("action"))
                .and_then(|a| a.as_str())
                == Some(action)
        })
        .collect()
}

/// A field of an event's `shaping` object as a string.
pub fn shaping_str<'a>(e: &'a Event, field: &str) -> Option<&'a str> {
    e.shaping.as_ref()?.get(field)?.as_str()
}
