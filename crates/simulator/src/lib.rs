//! SMTP servers on loopback addresses that behave like mailbox providers, for rehearsing
//! adaptive delivery without touching the real Internet.
//!
//! A [`Scenario`] (TOML) lists providers. Each listens on a loopback address and applies, per
//! **source IP** (the peer address of the connection):
//!
//! * `max_connections` at once: the next connection gets `421 4.7.0 Try again later, closing
//!   connection` instead of the banner;
//! * `messages_per_second` / `messages_per_minute` (counted at accepted MAIL FROM): more get
//!   `451 4.7.1 ... rate limited` and the session stays open;
//! * `greylist = "5m"`: the first attempt of a (source IP, sender, recipient) triple gets
//!   `451 4.7.1 Greylisted`, a retry at least that long after passes;
//! * `unknown_users` / `unknown_user_prefixes` (local parts) → `550 5.1.1`;
//!   `full_mailboxes` → `452 4.2.2`;
//! * `random_4xx` probability at MAIL FROM → `451 4.3.0`, from an RNG seeded by `seed`;
//! * `[provider.delays]` before the banner, HELO, MAIL, RCPT and end-of-data replies;
//! * `[provider.reputation]`: each over-limit attempt (connection or rate) subtracts `penalty`
//!   from the source's score; below `shrink_below` its limits are multiplied by
//!   `shrink_factor`; below `block_below` every connection and MAIL gets `554 5.7.1` for
//!   `block_for`, after which the score is `after_block`. Accepted messages add `recovery`.
//!
//! `style = "gmail" | "yahoo" | "outlook" | "generic"` picks the wording (our own text in the
//! shape of each provider's replies). Listen addresses outside `127.0.0.0/8` and `::1` are
//! refused. Time-dependent rules read a [`cartero_clock::Clock`]; see
//! [`Simulator::start_with_clock`].
//!
//! ```toml
//! seed = 7
//! [[provider]]
//! name = "gmail"
//! listen = "127.0.0.10:2525"
//! style = "gmail"
//! max_connections = 3
//! messages_per_second = 5
//! greylist = "60s"
//! unknown_user_prefixes = ["nouser"]
//! [provider.reputation]
//! penalty = 10
//! block_for = "10m"
//! ```

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod policy;
mod replies;
pub mod scenario;
mod server;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use cartero_clock::SharedClock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use policy::Stats;
pub use scenario::{ProviderConfig, Scenario, ScenarioError, Style};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A listen address could not be bound.
    #[error("provider {provider:?}: cannot listen on {addr}: {source}")]
    Bind {
        provider: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct Provider {
    addr: SocketAddr,
    policy: Arc<policy::Policy>,
    task: JoinHandle<()>,
}

/// Running simulated providers. Dropping it without [`Simulator::shutdown`] stops accepting
/// as well (the listener tasks see the stop signal's sender go away).
pub struct Simulator {
    providers: BTreeMap<String, Provider>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addrs", &self.addrs())
            .finish()
    }
}

impl Simulator {
    /// Validates the scenario and binds every provider, with the system clock.
    pub async fn start(scenario: Scenario) -> Result<Simulator, SimError> {
        Self::start_with_clock(scenario, cartero_clock::system()).await
    }

    /// As [`Simulator::start`], with the clock that rates, greylisting and blocks read.
    pub async fn start_with_clock(
        scenario: Scenario,
        clock: SharedClock,
    ) -> Result<Simulator, SimError> {
        scenario.validate()?;
        let (stop, _) = watch::channel(false);
        let mut providers = BTreeMap::new();
        for (i, cfg) in scenario.providers.into_iter().enumerate() {
            let listener =
                TcpListener::bind(cfg.listen)
                    .await
                    .map_err(|source| SimError::Bind {
                        provider: cfg.name.clone(),
                        addr: cfg.listen,
                        source,
                    })?;
            let addr = listener.local_addr().map_err(|source| SimError::Bind {
                provider: cfg.name.clone(),
                addr: cfg.listen,
                source,
            })?;
            let name = cfg.name.clone();
            // Each provider gets its own stream of random numbers, still fixed by the seed.
            let seed = scenario.seed.wrapping_add(i as u64);
            let policy = Arc::new(policy::Policy::new(cfg, Arc::clone(&clock), seed));
            let task = tokio::spawn(server::serve(
                listener,
                Arc::clone(&policy),
                stop.subscribe(),
            ));
            tracing::info!(provider = %name, %addr, "simulated provider listening");
            providers.insert(name, Provider { addr, policy, task });
        }
        Ok(Simulator { providers, stop })
    }

    /// The bound address of every provider, by name.
    pub fn addrs(&self) -> BTreeMap<String, SocketAddr> {
        self.providers
            .iter()
            .map(|(n, p)| (n.clone(), p.addr))
            .collect()
    }

    /// The bound address of one provider.
    pub fn addr(&self, provider: &str) -> Option<SocketAddr> {
        self.providers.get(provider).map(|p| p.addr)
    }

    /// Counters of one provider, `None` for an unknown name.
    pub fn stats(&self, provider: &str) -> Option<Stats> {
        self.providers.get(provider).map(|p| p.policy.stats())
    }

    /// The reputation score of a source IP at a provider (`None` when reputation is off or
    /// the IP was never seen).
    pub fn reputation(&self, provider: &str, source: IpAddr) -> Option<u32> {
        self.providers.get(provider)?.policy.reputation(source)
    }

    /// Stops accepting, closes open sessions and waits for the listeners to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for (name, p) in self.providers {
            if let Err(e) = p.task.await {
                tracing::warn!(provider = %name, error = %e, "listener task failed");
            }
        }
    }
}
