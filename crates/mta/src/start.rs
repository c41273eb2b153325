//! Assembling the MTA from its configuration, and taking it down gracefully.

use crate::api::{self, ApiState, MetricsRender};
use crate::config::MtaConfig;
use crate::delivery::DeliveryCtx;
use crate::inbound::{self, Inbound};
use crate::inject::{InjectError, Injected, Injection, Injector};
use crate::inmail::{InMail, InMailDeps};
use crate::pools::Pools;
use crate::prepare::Preparer;
use crate::queue::view::{MessageView, QueueSummary};
use crate::queue::{Cmd, LastFailure, Msg, QRcpt, Scheduler, SchedulerHandle, Settler, domain_of};
use crate::routing::Router;
use crate::tls;
use cartero_bounce::{Classifier, FailureInput, RuleClassifier};
use cartero_clock::SharedClock;
use cartero_dkim::{Signer, SigningKey};
use cartero_events::{EventSink, Fanout, JsonlFileSink, WebhookSink};
use cartero_smtp::Reply;
use cartero_spool::{RcptStatus, Recovered, Spool, SpoolOptions};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the MTA could not start. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool: {0}")]
    Spool(#[from] cartero_spool::SpoolError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("DKIM key {path}: {detail}")]
    Dkim { path: PathBuf, detail: String },
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("delivery.routes: {0}")]
    Route(String),
    #[error("events: {0}")]
    Events(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Pools(String),
    #[error("shaping: {0}")]
    Shaping(String),
    #[error("delivery.sources is empty: at least one egress source is needed")]
    NoSource,
    #[error("{0}")]
    InMail(#[from] crate::inmail::InMailError),
    #[error("bounce rules: {0}")]
    Bounce(String),
    #[error("{0}")]
    Smtp(String),
}

/// What the embedding program provides besides the config.
pub struct StartOptions {
    pub clock: SharedClock,
    /// In-process event consumers (the campaign layer, `events tail`, tests).
    pub sinks: Vec<Arc<dyn EventSink>>,
    pub metrics: Option<MetricsRender>,
    /// Replaces the built-in classifier.
    pub classifier: Option<Arc<dyn Classifier>>,
    /// Re-reads the configuration for `reload_shaping` (SIGHUP, API); `None` disables reload.
    pub reloader: Option<crate::shaping::Reloader>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: cartero_clock::system(),
            sinks: Vec::new(),
            metrics: None,
            classifier: None,
            reloader: None,
        }
    }
}

/// A running MTA.
pub struct Mta {
    pub(crate) sched: SchedulerHandle,
    injector: Arc<Injector>,
    spool: Spool,
    stop: watch::Sender<bool>,
    smtp_addrs: Vec<SocketAddr>,
    http_addr: Option<SocketAddr>,
    tokens: Arc<Vec<String>>,
    file_sink: Option<Arc<JsonlFileSink>>,
    webhooks: Vec<Arc<WebhookSink>>,
    grace: std::time::Duration,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Bounce handling and unsubscribe tokens; `None` when `inmail.bounce_domains` is empty.
    pub(crate) inmail: Option<Arc<InMail>>,
    pub(crate) shaping: Arc<cartero_shaping::AdaptiveLimits>,
    pub(crate) reloader: Option<crate::shaping::Reloader>,
    pub(crate) data_dir: std::path::PathBuf,
    clock: SharedClock,
}

fn load_signer(cfg: &MtaConfig) -> Result<Option<Arc<Signer>>, StartError> {
    if cfg.dkim.keys.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for k in &cfg.dkim.keys {
        let err = |detail: String| StartError::Dkim {
            path: k.key_file.clone(),
            detail,
        };
        let pem = std::fs::read_to_string(&k.key_file).map_err(|e| err(e.to_string()))?;
        keys.push(
            SigningKey::from_pem(&k.domain, &k.selector, &pem).map_err(|e| err(e.to_string()))?,
        );
    }
    Ok(Some(Arc::new(Signer::new(keys))))
}

/// The API tokens: configured ones, or one generated at first start and kept in `data_dir`.
fn api_tokens(cfg: &MtaConfig) -> Result<Vec<String>, StartError> {
    if !cfg.http.tokens.is_empty() {
        return Ok(cfg.http.tokens.clone());
    }
    let path = cfg.data_dir.join("api-token");
    let err = |source| StartError::Token {
        path: path.clone(),
        source,
    };
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(vec![t.trim().to_string()]);
    }
    let mut raw = [0u8; 24];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| err(std::io::Error::other("system RNG failed")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    tls::write_secret_file(&path, token.as_bytes()).map_err(err)?;
    tracing::info!(path = %path.display(), "generated an API token");
    Ok(vec![token])
}

/// The assembled event fan-out and the sinks that need flushing at shutdown.
type Sinks = (Fanout, Option<Arc<JsonlFileSink>>, Vec<Arc<WebhookSink>>);

fn event_sinks(cfg: &MtaConfig, opts: &StartOptions) -> Result<Sinks, StartError> {
    let mut fanout = Fanout::new();
    for s in &opts.sinks {
        fanout.push(s.clone());
    }
    let mut file_sink = None;
    if cfg.events.log_file {
        let mut fc = cfg.events.file.clone();
        fc.dir = cfg.data_dir.join(&fc.dir);
        let sink =
            Arc::new(JsonlFileSink::open(fc).map_err(|e| StartError::Events(e.to_string()))?);
        fanout.push(sink.clone());
        file_sink = Some(sink);
    }
    let mut hooks = Vec::new();
    for (i, w) in cfg.events.webhooks.iter().enumerate() {
        let mut w = w.clone();
        w.spool_dir = cfg.data_dir.join(&w.spool_dir).join(i.to_string());
        let sink = Arc::new(
            WebhookSink::start(w, opts.clock.clone())
                .map_err(|e| StartError::Events(e.to_string()))?,
        );
        fanout.push(sink.clone());
        hooks.push(sink);
    }
    Ok((fanout, file_sink, hooks))
}

/// Turns what the spool recovered into queue entries.
fn recovered_rcpts(recovered: Vec<Recovered>, classifier: &dyn Classifier) -> Vec<QRcpt> {
    let mut out = Vec::new();
    for rec in recovered {
        let msg = Arc::new(Msg {
            id: rec.id,
            env: rec.envelope,
            size: rec.body_len,
        });
        for (idx, st) in rec.rcpts.into_iter().enumerate() {
            if st.status != RcptStatus::Queued {
                continue;
            }
            let last = st.last_reply.map(|text| {
                let reply = Reply::from_lines(&[text.as_str()]);
                let class = classifier
                    .classify(&FailureInput {
                        code: reply.as_ref().map_or(0, |r| r.code),
                        enhanced: reply
                            .as_ref()
                            .and_then(|r| r.enhanced)
                            .map(|e| (e.class, e.subject, e.detail)),
                        text: reply.as_ref().map_or(text.as_str(), |r| r.text.as_str()),
                        host: None,
                    })
                    .class;
                Box::new(LastFailure {
                    text: text.into(),
                    class,
                })
            });
            out.push(QRcpt {
                msg: msg.clone(),
                idx: idx as u32,
                domain: domain_of(msg.env.recipients.get(idx).map_or("", String::as_str)).into(),
                attempts: st.attempts,
                held: false,
                next_attempt: st.next_attempt,
                last,
            });
        }
    }
    out
}

impl Mta {
    /// Opens the spool (resuming what it holds), binds the listeners and starts delivering.
    pub async fn start(cfg: MtaConfig, opts: StartOptions) -> Result<Arc<Mta>, StartError> {
        let dir_err = |source| StartError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(dir_err)?;
        let (spool, recovered) = Spool::open(&cfg.data_dir.join("spool"), SpoolOptions::default())?;
        let classifier = match opts.classifier.clone() {
            Some(c) => c,
            None => Arc::new(
                RuleClassifier::from_paths(&cfg.bounce.rules_files)
                    .map_err(|e| StartError::Bounce(e.to_string()))?,
            ),
        };
        let (fanout, file_sink, webhooks) = event_sinks(&cfg, &opts)?;
        let events: Arc<dyn EventSink> = Arc::new(fanout);
        let (sched, rx) = Scheduler::channel();
        let inmail = InMail::load(
            &cfg.inmail,
            &cfg.data_dir,
            &cfg.delivery.sources,
            InMailDeps {
                classifier: classifier.clone(),
                qualifier: cfg.bounce.qualification.clone(),
                events: events.clone(),
                clock: opts.clock.clone(),
                complaints: Arc::new(sched.clone()),
            },
        )?;
        let prepare = Arc::new(Preparer {
            signer: load_signer(&cfg)?,
            inmail: inmail.clone(),
            clock: opts.clock.clone(),
        });
        let pools = Pools::build(&cfg.delivery, &cfg.hostname).map_err(StartError::Pools)?;
        let policy = Arc::new(api::Policy::new(&cfg.http, pools.names()));
        let shaping =
            crate::shaping::build(&cfg, opts.clock.clone()).map_err(StartError::Shaping)?;
        let resolver = cartero_dns::MxResolver::new(&cfg.delivery.dns)
            .map_err(|e| StartError::Dns(e.to_string()))?;
        let sites = Arc::new(crate::shaping::Sites(shaping.clone()));
        let router = Router::new(resolver, &cfg.delivery.routes, cfg.delivery.port, sites)
            .map_err(StartError::Route)?;
        let limits: Arc<dyn cartero_shaping::Limits> = shaping.clone();
        let ctx = Arc::new(DeliveryCtx {
            clock: opts.clock.clone(),
            spool: spool.clone(),
            limits: limits.clone(),
            router: Arc::new(router),
            classifier: classifier.clone(),
            sched: sched.clone(),
            pools,
            timeouts: cfg.delivery.timeouts.clone(),
            route_cache_ms: cfg.delivery.route_cache.as_millis() as u64,
            max_workers: cfg.delivery.max_connections,
            tls_broken: Default::default(),
            prepare,
        });
        let settler = Settler {
            spool: spool.clone(),
            events: events.clone(),
            clock: opts.clock.clone(),
            retry: cfg.delivery.retry.clone(),
            limits,
        };
        let mut tasks = vec![
            tokio::spawn(Scheduler::new(ctx, rx, settler).run()),
            tokio::spawn(crate::shaping::persist_loop(
                shaping.clone(),
                cfg.data_dir.clone(),
            )),
        ];
        sched.send(Cmd::Enqueue(recovered_rcpts(
            recovered,
            classifier.as_ref(),
        )));
        let injector = Arc::new(Injector {
            spool: spool.clone(),
            sched: sched.clone(),
            clock: opts.clock.clone(),
            events,
            hostname: cfg.hostname.clone(),
            default_validity: cfg.delivery.default_validity,
            max_validity: cfg.delivery.max_validity,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (cert, key) = tls::ensure_certificate(&cfg.tls, &cfg.data_dir, &cfg.hostname)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&cert, &key)?);
        let postmaster =
            inbound::postmaster_target(&cfg.smtp, &cfg.hostname, &cfg.inmail.bounce_domains)
                .map_err(StartError::Smtp)?;
        let inbound = Arc::new(Inbound::new(
            cfg.smtp.clone(),
            cfg.hostname.clone(),
            acceptor,
            injector.clone(),
            inmail.clone(),
            postmaster,
        ));
        let mut smtp_addrs = Vec::new();
        for addr in &cfg.smtp.listen {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    addr: *addr,
                    source,
                })?;
            smtp_addrs.push(l.local_addr().unwrap_or(*addr));
            tasks.push(tokio::spawn(inbound::serve(
                l,
                inbound.clone(),
                stop_rx.clone(),
            )));
        }
        let http =
            TcpListener::bind(cfg.http.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: cfg.http.listen,
                    source,
                })?;
        let mta = Arc::new(Mta {
            sched,
            injector,
            spool,
            stop,
            smtp_addrs,
            http_addr: http.local_addr().ok(),
            tokens: Arc::new(api_tokens(&cfg)?),
            file_sink,
            webhooks,
            grace: cfg.delivery.shutdown_grace,
            tasks: Mutex::new(Vec::new()),
            inmail,
            shaping,
            reloader: opts.reloader.clone(),
            data_dir: cfg.data_dir.clone(),
            clock: opts.clock.clone(),
        });
        let state = ApiState {
            mta: mta.clone(),
            tokens: mta.tokens.clone(),
            metrics: opts.metrics,
            policy,
        };
        let app = api::router(state, cfg.http.max_body);
        let limits = crate::http_server::HttpLimits {
            header_timeout: cfg.http.header_timeout,
            max_connections: cfg.http.max_connections,
        };
        tasks.push(tokio::spawn(crate::http_server::serve(
            http,
            app,
            limits,
            stop_rx.clone(),
        )));
        *mta.tasks.lock() = tasks;
        Ok(mta)
    }

    pub async fn inject(&self, injection: Injection) -> Result<Injected, InjectError> {
        self.injector.inject(injection).await
    }

    pub fn smtp_addrs(&self) -> &[SocketAddr] {
        &self.smtp_addrs
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The clock the MTA runs on (operator actions compute their end time from it).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The first API token (for the CLI and tests running in-process).
    pub fn api_token(&self) -> &str {
        self.tokens.first().map_or("", String::as_str)
    }

    pub async fn queue_summary(&self) -> Option<QueueSummary> {
        self.sched.ask(|reply| Cmd::Summary { reply }).await
    }

    pub async fn inspect(&self, id: cartero_spool::MessageId) -> Option<MessageView> {
        self.sched
            .ask(|reply| Cmd::Inspect { id, reply })
            .await
            .flatten()
    }

    pub async fn flush(&self, domain: Option<String>) -> usize {
        self.sched
            .ask(|reply| Cmd::Flush { domain, reply })
            .await
            .unwrap_or(0)
    }

    pub async fn drain(&self, domain: String) -> usize {
        self.sched
            .ask(|reply| Cmd::Drain { domain, reply })
            .await
            .unwrap_or(0)
    }

    /// Re-examines due recipients now; with a manual clock, call after advancing it.
    pub fn tick(&self) {
        self.sched.send(Cmd::Tick);
    }

    pub fn spool_stats(&self) -> cartero_spool::SpoolStats {
        self.spool.stats()
    }

    /// Stops accepting, lets in-flight transactions finish (up to `delivery.shutdown_grace`),
    /// then flushes events. Queued recipients stay in the spool for the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let done = self.sched.ask(|reply| Cmd::Shutdown { reply });
        if tokio::time::timeout(self.grace, done).await.is_err() {
            tracing::warn!("shutdown grace period over with transactions still in flight");
        }
        self.save_shaping();
        // Journal updates written without waiting (final states) reach the disk before exit.
        if let Err(e) = self.spool.flush().await {
            tracing::error!(error = %e, "flushing the spool at shutdown");
        }
        if let Some(f) = &self.file_sink {
            let _ = f.flush().await;
        }
        for w in &self.webhooks {
            let _ = w.persist().await;
        }
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}
