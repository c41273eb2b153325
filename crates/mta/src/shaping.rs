//! The MTA's side of shaping: building the engine from the config, its persisted state beside
//! the spool, configuration reload, and the operator actions (view, suspend, resume).

use crate::config::MtaConfig;
use crate::pools::Pools;
use crate::queue::Cmd;
use crate::routing::SiteClassifier;
use crate::start::Mta;
use cartero_clock::{SharedClock, UnixMillis};
use cartero_shaping::{
    AdaptiveLimits, STATE_VERSION, Scope, ShapingAction, ShapingState, ShapingView,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File in `data_dir` holding learned rates, warm-up stages and suspensions.
pub const STATE_FILE: &str = "shaping-state.json";

/// How often changed shaping state is written (and at shutdown).
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// Re-reads the configuration for a reload (the binary knows the file); returns the error to
/// show (file, line and reason) when it cannot be used.
pub type Reloader = Arc<dyn Fn() -> Result<MtaConfig, String> + Send + Sync>;

/// Lets the router ask the configuration in force (it changes on reload).
pub(crate) struct Sites(pub Arc<AdaptiveLimits>);

impl SiteClassifier for Sites {
    fn has_own_limits(&self, domain: &str) -> bool {
        self.0.has_own_limits(domain)
    }

    fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String> {
        self.0.provider_of(domain, mx_hosts)
    }
}

/// Builds the engine and restores the persisted state. A state file that cannot be read is
/// moved aside (`.bad`) with a warning: learned rates are an optimisation, not data to die for.
pub(crate) fn build(cfg: &MtaConfig, clock: SharedClock) -> Result<Arc<AdaptiveLimits>, String> {
    let limits = AdaptiveLimits::new(cfg.shaping.clone(), &Pools::warming(&cfg.delivery), clock)
        .map_err(|e| e.to_string())?;
    let path = cfg.data_dir.join(STATE_FILE);
    match load_state(&path) {
        Ok(Some(state)) => limits.restore(state),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable shaping state");
            let _ = std::fs::rename(&path, path.with_extension("json.bad"));
        }
    }
    Ok(Arc::new(limits))
}

fn load_state(path: &Path) -> Result<Option<ShapingState>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let state: ShapingState = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "state version {} (expected {STATE_VERSION})",
            state.version
        ));
    }
    Ok(Some(state))
}

/// Writes the state atomically: a crash leaves the old file or the new one, never half of one.
pub(crate) fn save_state(limits: &AdaptiveLimits, data_dir: &Path) -> std::io::Result<()> {
    let state = limits.snapshot();
    let json = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
    let path = data_dir.join(STATE_FILE);
    let tmp: PathBuf = data_dir.join(format!("{STATE_FILE}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)
}

/// Saves the state every few seconds when it changed.
pub(crate) async fn persist_loop(limits: Arc<AdaptiveLimits>, data_dir: PathBuf) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    loop {
        tick.tick().await;
        if limits.is_dirty() {
            let (l, d) = (limits.clone(), data_dir.clone());
            let r = tokio::task::spawn_blocking(move || save_state(&l, &d)).await;
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "cannot save shaping state");
            }
        }
    }
}

impl Mta {
    /// Per (source, site) configured and live limits, suspensions and warm-up.
    pub fn shaping_view(&self) -> ShapingView {
        use cartero_shaping::Limits;
        self.shaping.view()
    }

    /// Suspends a scope; what is queued for it waits without using attempts.
    pub async fn suspend(
        &self,
        scope: Scope,
        until: Option<UnixMillis>,
        reason: String,
    ) -> Option<ShapingAction> {
        self.sched
            .ask(|reply| Cmd::Suspend {
                scope,
                until,
                reason,
                reply,
            })
            .await
    }

    /// Lifts a suspension; `None` when there was none.
    pub async fn resume(&self, scope: Scope) -> Option<ShapingAction> {
        self.sched
            .ask(|reply| Cmd::Resume { scope, reply })
            .await
            .flatten()
    }

    /// Re-reads the configuration and applies its `[shaping]` section (and warm-up flags of the
    /// sources). On any error the running configuration stays and the error is returned.
    pub fn reload_shaping(&self) -> Result<(), String> {
        let reload = self
            .reloader
            .as_ref()
            .ok_or("no configuration file to reload (started without --config)")?;
        let cfg = reload()?;
        self.shaping
            .reload(cfg.shaping, &Pools::warming(&cfg.delivery))
            .map_err(|e| e.to_string())?;
        tracing::info!("shaping configuration reloaded");
        Ok(())
    }

    /// Writes the shaping state now (shutdown).
    pub(crate) fn save_shaping(&self) {
        if let Err(e) = save_state(&self.shaping, &self.data_dir) {
            tracing::error!(error = %e, "cannot save shaping state");
        }
    }
}
