use crate::node::{Campaign, OUTBOX_CONSUMER};
use anyhow::Context;
use cartero_mta::shaping::Reloader;
use cartero_mta::{Mta, StartOptions};
use std::path::Path;
use std::sync::Arc;

pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let (cfg, campaign_cfg, dashboard_cfg) = super::config::load_all(config)?;
    if campaign_cfg.enabled && !campaign_cfg.mta.is_empty() {
        return run_campaign_only(&cfg, &campaign_cfg, &dashboard_cfg).await;
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let mut opts = StartOptions {
        metrics: Some(Arc::new(move || handle.render())),
        reloader: config.map(reloader),
        ..StartOptions::default()
    };
    if let Some((routes, auth)) = crate::dashboard::build(&dashboard_cfg, &cfg, opts.clock.clone())?
    {
        opts.public_routes = Some(routes);
        opts.request_auth = Some(auth);
    }
    let mut campaign = None;
    if campaign_cfg.enabled {
        let (c, routes) = Campaign::open(&cfg, &campaign_cfg, opts.clock.clone()).await?;
        opts.event_outbox.push(OUTBOX_CONSUMER.into());
        opts.routes = Some(routes);
        campaign = Some(c);
    }
    opts.openapi = Some(api_document(campaign.is_some()));
    let signals = Signals::install()?;
    let mta = Mta::start(cfg.clone(), opts)
        .await
        .context("starting the MTA")?;
    if let Some(c) = &mut campaign {
        c.run(mta.clone()).await?;
    }
    for a in mta.smtp_addrs() {
        tracing::info!(addr = %a, "SMTP listening");
    }
    if let Some(a) = mta.http_addr() {
        tracing::info!(addr = %a, tls = cfg.http.tls, "HTTP API listening");
        if dashboard_cfg.enabled {
            let scheme = if cfg.http.tls { "https" } else { "http" };
            tracing::info!(url = %format!("{scheme}://{a}/ui/"), "dashboard");
        }
    }
    tracing::info!(token_file = %cfg.data_dir.join("api-token").display(), "ready");
    signals.wait(Some(&mta)).await;
    tracing::info!("shutting down: finishing in-flight transactions");
    if let Some(c) = &mut campaign {
        c.stop_senders().await;
    }
    mta.shutdown().await;
    if let Some(c) = campaign {
        c.finish(std::time::Duration::from_secs(10)).await;
    }
    Ok(())
}

/// Remote MTA mode: the campaign layer alone, its API on `[http] listen`, its messages to the
/// MTA at `[campaign] mta`, its events from that MTA's webhook.
async fn run_campaign_only(
    cfg: &cartero_mta::MtaConfig,
    campaign_cfg: &cartero_campaign::config::CampaignConfig,
    dashboard_cfg: &cartero_dashboard::DashboardConfig,
) -> anyhow::Result<()> {
    let clock = StartOptions::default().clock;
    let (public, auth) = crate::dashboard::build(dashboard_cfg, cfg, clock.clone())?.unzip();
    let (mut c, routes) = Campaign::open(cfg, campaign_cfg, clock).await?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    // Behind the token, as on a full node.
    let routes = routes.route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    let signals = Signals::install()?;
    let listener = cartero_mta::ApiListener::start(cfg, routes, public, auth)
        .await
        .context("starting the HTTP listener")?;
    c.run_remote().await?;
    tracing::info!(addr = %listener.addr, "HTTP API listening");
    tracing::info!(mta = %campaign_cfg.mta, "campaign layer only: messages go to the remote MTA");
    tracing::info!(token_file = %cfg.data_dir.join("api-token").display(), "ready");
    signals.wait(None).await;
    tracing::info!("shutting down: finishing the batches being handed over");
    c.stop_senders().await;
    listener.stop().await;
    c.finish(std::time::Duration::from_secs(10)).await;
    Ok(())
}

/// The document `/api/v1/openapi.json` serves: the MTA's routes and, when it runs, the
/// campaign layer's, under this program's name and version.
fn api_document(campaign: bool) -> utoipa::openapi::OpenApi {
    let extra = if campaign {
        cartero_campaign::api::openapi()
    } else {
        utoipa::openapi::OpenApi::default()
    };
    let mut doc = cartero_mta::api::openapi_with(extra);
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title("cartero")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "cartero's HTTP API: injection, queue, shaping, metrics and the campaign layer. \
             Every operation but /healthz and /unsubscribe/{token} needs the bearer token.",
        ))
        .license(Some(utoipa::openapi::License::new(env!(
            "CARGO_PKG_LICENSE"
        ))))
        .build();
    doc
}

/// Re-reads the file `serve` started with, through the same loader (errors name file and line).
fn reloader(path: &Path) -> Reloader {
    let path = path.to_path_buf();
    Arc::new(move || super::config::load(Some(&path)).map_err(|e| format!("{e:#}").into()))
}

fn reload(mta: &Mta) {
    tracing::info!("SIGHUP: reloading the configuration");
    if let Err(e) = mta.reload_shaping() {
        tracing::error!(error = %e, "reload failed: keeping the running configuration");
    }
}

/// SIGTERM/SIGINT stop, SIGHUP reloads. Installed before "ready" is logged: until then SIGHUP
/// would still have its default action and kill the process.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind| signal(kind).context("installing signal handlers");
        Ok(Self {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    /// Until SIGTERM or SIGINT; SIGHUP reloads the MTA's shaping (when there is an MTA).
    async fn wait(mut self, mta: Option<&Mta>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match mta {
                    Some(m) => reload(m),
                    None => tracing::info!("SIGHUP: nothing to reload without an MTA"),
                },
            }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn wait(self, _mta: Option<&Mta>) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
