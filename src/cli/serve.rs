use anyhow::Context;
use cartero_mta::{Mta, StartOptions};
use std::path::Path;
use std::sync::Arc;

pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = super::config::load(config)?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let opts = StartOptions {
        metrics: Some(Arc::new(move || handle.render())),
        ..StartOptions::default()
    };
    let mta = Mta::start(cfg.clone(), opts)
        .await
        .context("starting the MTA")?;
    for a in mta.smtp_addrs() {
        tracing::info!(addr = %a, "SMTP listening");
    }
    if let Some(a) = mta.http_addr() {
        tracing::info!(addr = %a, "HTTP API listening");
    }
    tracing::info!(token_file = %cfg.data_dir.join("api-token").display(), "ready");
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight transactions");
    mta.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
