//! The MTA's side of shaping: building the engine from the config and its persisted state
//! beside the spool. Everything else goes through the `Limits` seam, so another implementation
//! (shared limits in Redis) drops in here.

use crate::config::MtaConfig;
use crate::pools::Pools;
use crate::routing::SiteClassifier;
use cartero_clock::SharedClock;
use cartero_shaping::{AdaptiveLimits, Limits, STATE_VERSION, ShapingState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File in `data_dir` holding learned rates, warm-up stages and suspensions.
pub const STATE_FILE: &str = "shaping-state.json";

/// How often changed shaping state is written (and at shutdown).
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// Re-reads the configuration for a reload (the binary knows the file); returns the error to
/// show (file, line and reason) when it cannot be used.
pub type Reloader = Arc<dyn Fn() -> Result<MtaConfig, BoxError> + Send + Sync>;

/// Whatever the embedder's configuration loader reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a reload left the running configuration in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no configuration file to reload (started without --config)")]
    NoConfigFile,
    #[error("{0}")]
    Config(BoxError),
    #[error("shaping: {0}")]
    Shaping(#[from] cartero_shaping::ShapingConfigError),
}

/// Lets the router ask the configuration in force (it changes on reload).
pub(crate) struct Sites(pub Arc<dyn Limits>);

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
pub(crate) fn build(
    cfg: &MtaConfig,
    clock: SharedClock,
) -> Result<Arc<dyn Limits>, cartero_shaping::ShapingConfigError> {
    let limits = AdaptiveLimits::new(cfg.shaping.clone(), &Pools::warming(&cfg.delivery), clock)?;
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

/// Writes what changed in the learned state, atomically: a crash leaves the old file or the
/// new one, never half of one.
pub(crate) fn save_state(limits: &dyn Limits, data_dir: &Path) -> std::io::Result<()> {
    let Some(state) = limits.changed_state() else {
        return Ok(());
    };
    let json = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
    let path = data_dir.join(STATE_FILE);
    let tmp: PathBuf = data_dir.join(format!("{STATE_FILE}.tmp"));
    crate::tls::write_secret_file(&tmp, &json)?;
    std::fs::rename(&tmp, &path)
}

/// Saves the state every few seconds when it changed.
pub(crate) async fn persist_loop(limits: Arc<dyn Limits>, data_dir: PathBuf) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    loop {
        tick.tick().await;
        let (l, d) = (limits.clone(), data_dir.clone());
        let r = tokio::task::spawn_blocking(move || save_state(l.as_ref(), &d)).await;
        if let Ok(Err(e)) = r {
            tracing::error!(error = %e, "cannot save shaping state");
        }
    }
}
