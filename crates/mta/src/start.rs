//! Assembling the MTA from its configuration, and taking it down gracefully.

use crate::api::{self, ApiState, MetricsRender};
use crate::config::MtaConfig;
use crate::delivery::{DeliveryCtx, Workers};
use crate::inbound::{self, Inbound};
use crate::inject::Injector;
use crate::inmail::{InMail, InMailDeps};
use crate::outbox::Outbox;
use crate::pools::Pools;
use crate::prepare::Preparer;
use crate::queue::{
    Cmd, LastFailure, Msg, QRcpt, QueueCtx, Scheduler, SchedulerHandle, Settler, domain_of,
};
use crate::routing::Router;
use crate::tls;
use cartero_bounce::{Classifier, FailureInput, RuleClassifier};
use cartero_clock::SharedClock;
use cartero_dkim::{Signer, SigningKey};
use cartero_events::{BroadcastSink, EventSink, Fanout, JsonlFileSink, WebhookSink};
use cartero_shaping::Limits;
use cartero_smtp::Reply;
use cartero_spool::{RcptStatus, Recovered, Spool, SpoolOptions};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    #[error("DKIM key {path}: {source}")]
    DkimFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DKIM key {path}: {source}")]
    Dkim {
        path: PathBuf,
        source: cartero_dkim::DkimError,
    },
    #[error("DNS resolver: {0}")]
    Dns(#[from] cartero_dns::ConfigError),
    #[error("delivery.routes: {0}")]
    Route(#[from] crate::routing::RouteError),
    #[error("events: {0}")]
    Events(#[from] cartero_events::EventsError),
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
    Pools(#[from] crate::pools::PoolsError),
    #[error("shaping: {0}")]
    Shaping(#[from] cartero_shaping::ShapingConfigError),
    #[error("delivery.sources is empty: at least one egress source is needed")]
    NoSource,
    #[error("{0}")]
    InMail(#[from] crate::inmail::InMailError),
    #[error("invalid configuration:\n{0}")]
    Config(#[from] crate::validate::ConfigProblems),
    #[error("bounce rules: {0}")]
    Bounce(#[from] cartero_bounce::RuleError),
    #[error("{0}")]
    Postmaster(#[from] inbound::BadPostmaster),
    #[error("{0}")]
    Idempotency(#[from] crate::idempotency::KeysError),
}

/// Events a live subscriber may lag behind by before it misses some (and is told how many).
const TAIL_CAPACITY: usize = 4096;

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
    /// More HTTP routes served on the API listener behind the same token check and body
    /// limit (the campaign layer's API, which the MTA knows nothing else about).
    pub routes: Option<axum::Router>,
    /// Routes served on the API listener without the token check, because they check
    /// requests themselves (the dashboard's pages and login).
    pub public_routes: Option<axum::Router>,
    /// A second credential the token-checked routes accept (the dashboard's sessions).
    pub request_auth: Option<crate::api::SharedRequestAuth>,
    /// Consumers of the durable event outbox (`data_dir/spool/outbox/`), read with
    /// [`Mta::event_outbox`]. Empty (the default): no outbox.
    pub event_outbox: Vec<String>,
    /// The document served at `/api/v1/openapi.json` (the embedding program's, covering
    /// `routes`: see [`api::openapi_with`](crate::api::openapi_with)); `None` serves
    /// [`api::openapi`](crate::api::openapi).
    pub openapi: Option<utoipa::openapi::OpenApi>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: cartero_clock::system(),
            sinks: Vec::new(),
            metrics: None,
            classifier: None,
            reloader: None,
            routes: None,
            public_routes: None,
            request_auth: None,
            event_outbox: Vec::new(),
            openapi: None,
        }
    }
}

/// A running MTA.
pub struct Mta {
    pub(crate) sched: SchedulerHandle,
    pub(crate) injector: Arc<Injector>,
    pub(crate) spool: Spool,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) smtp_addrs: Vec<SocketAddr>,
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) tokens: Arc<Vec<String>>,
    pub(crate) file_sink: Option<Arc<JsonlFileSink>>,
    /// Live subscribers (`events tail`).
    pub(crate) tail: BroadcastSink,
    pub(crate) webhooks: Vec<Arc<WebhookSink>>,
    pub(crate) grace: std::time::Duration,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Bounce handling and unsubscribe tokens; `None` when `inmail.bounce_domains` is empty.
    pub(crate) inmail: Option<Arc<InMail>>,
    pub(crate) shaping: Arc<dyn Limits>,
    pub(crate) reloader: Option<crate::shaping::Reloader>,
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) clock: SharedClock,
}

fn load_signer(cfg: &MtaConfig) -> Result<Option<Arc<Signer>>, StartError> {
    if cfg.dkim.keys.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for k in &cfg.dkim.keys {
        let path = || k.key_file.clone();
        let pem = std::fs::read_to_string(&k.key_file).map_err(|source| StartError::DkimFile {
            path: path(),
            source,
        })?;
        let key = SigningKey::from_pem(&k.domain, &k.selector, &pem).map_err(|source| {
            StartError::Dkim {
                path: path(),
                source,
            }
        })?;
        keys.push(key);
    }
    Ok(Some(Arc::new(Signer::new(keys))))
}

/// The API tokens: configured ones, or one generated at first start and kept in `data_dir`.
/// The API tokens: configured, or the one kept in `data_dir/api-token` (generated at the
/// first call).
pub fn api_tokens(cfg: &MtaConfig) -> Result<Vec<String>, StartError> {
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
    // Called before the MTA made its directories when the dashboard asks first.
    std::fs::create_dir_all(&cfg.data_dir).map_err(err)?;
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
        let sink = Arc::new(JsonlFileSink::open(fc)?);
        fanout.push(sink.clone());
        file_sink = Some(sink);
    }
    let mut hooks = Vec::new();
    for (i, w) in cfg.events.webhooks.iter().enumerate() {
        let mut w = w.clone();
        w.spool_dir = cfg.data_dir.join(&w.spool_dir).join(i.to_string());
        let sink = Arc::new(WebhookSink::start(w, opts.clock.clone())?);
        fanout.push(sink.clone());
        hooks.push(sink);
    }
    Ok((fanout, file_sink, hooks))
}

/// A `bounce` event for every recipient of a message the spool could not restore (one without
/// a recipient when even their number is gone), so no loss goes unreported. They are durable in
/// the outbox before they are emitted and before anything is delivered.
async fn report_lost(
    lost: &[cartero_spool::LostMessage],
    outbox: &Outbox,
    events: &dyn EventSink,
    clock: &dyn cartero_clock::Clock,
) -> Result<(), StartError> {
    let mut out = Vec::new();
    for m in lost {
        let count = m.recipients.unwrap_or(1);
        for idx in 0..count {
            let mut e = cartero_events::Event::new(cartero_events::EventType::Bounce, clock);
            e.message_id = Some(m.id.to_string());
            e.bounce_class = Some(cartero_bounce::BounceClass::UNDETERMINED.0);
            e.reason = Some("spool:lost".into());
            e.raw_reason = Some("message lost in a damaged spool record; not restored".into());
            if m.recipients.is_some() {
                e.metadata
                    .insert("recipient_index".into(), serde_json::Value::from(idx));
            }
            out.push(e);
        }
        metrics::counter!("cartero_spool_lost_messages_total").increment(1);
    }
    outbox.persist(&out).await?;
    for e in &out {
        events.emit(e);
    }
    Ok(())
}

/// The spool under `data_dir`, with the event outbox when consumers are named.
fn open_spool(cfg: &MtaConfig, opts: &StartOptions) -> Result<(Spool, Vec<Recovered>), StartError> {
    let spool_opts = SpoolOptions {
        outbox_consumers: opts.event_outbox.clone(),
        ..SpoolOptions::default()
    };
    Ok(Spool::open(&cfg.data_dir.join("spool"), spool_opts)?)
}

/// The remembered idempotency keys: the key file plus the keys of recovered mail.
fn open_keys(
    cfg: &MtaConfig,
    opts: &StartOptions,
    recovered: &[Recovered],
) -> Result<Arc<crate::idempotency::Keys>, StartError> {
    let keys = crate::idempotency::Keys::open(&cfg.data_dir, opts.clock.now_ms())?;
    keys.restore(recovered_keys(recovered, cfg.delivery.idempotency_window));
    Ok(Arc::new(keys))
}

/// The idempotency keys carried by recovered envelopes (see `idempotency`: the file may miss
/// the keys of mail spooled just before a crash).
fn recovered_keys(
    recovered: &[Recovered],
    window: std::time::Duration,
) -> Vec<(crate::idempotency::KeyHash, crate::idempotency::Recorded)> {
    let keep = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for rec in recovered {
        for (index, hex) in rec.envelope.idempotency.iter().enumerate() {
            let (Some(k), Ok(index)) = (
                crate::idempotency::KeyHash::from_hex(hex),
                u32::try_from(index),
            ) else {
                continue;
            };
            let r = crate::idempotency::Recorded {
                message: rec.id,
                index,
                expires_at: rec.envelope.received_at.saturating_add(keep),
            };
            out.push((k, r));
        }
    }
    out
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

/// The listeners, bound before anything starts so that a port in use fails the start cleanly.
struct Listeners {
    smtp: Vec<TcpListener>,
    http: TcpListener,
}

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

async fn bind_all(cfg: &MtaConfig) -> Result<Listeners, StartError> {
    let mut smtp = Vec::new();
    for addr in &cfg.smtp.listen {
        smtp.push(bind(*addr).await?);
    }
    Ok(Listeners {
        smtp,
        http: bind(cfg.http.listen).await?,
    })
}

/// The delivery side, assembled but not running: nothing is sent until [`Delivery::start`].
struct Delivery {
    scheduler: Scheduler,
    sched: SchedulerHandle,
    shaping: Arc<dyn Limits>,
    inmail: Option<Arc<InMail>>,
    pools: Arc<Pools>,
}

fn assemble_delivery(
    cfg: &MtaConfig,
    opts: &StartOptions,
    spool: &Spool,
    classifier: Arc<dyn Classifier>,
    events: Arc<dyn EventSink>,
) -> Result<Delivery, StartError> {
    let (sched, rx) = crate::queue::channel();
    let inmail = InMail::load(
        &cfg.inmail,
        &cfg.data_dir,
        &cfg.delivery.sources,
        InMailDeps {
            classifier: classifier.clone(),
            qualifier: cfg.bounce.qualification.clone(),
            events: events.clone(),
            clock: opts.clock.clone(),
            complaints: Arc::new(Complaints(sched.clone())),
            outbox: Outbox(spool.clone()),
        },
    )?;
    let prepare = Arc::new(Preparer {
        signer: load_signer(cfg)?,
        inmail: inmail.clone(),
        clock: opts.clock.clone(),
    });
    let pools = Arc::new(Pools::build(&cfg.delivery, &cfg.hostname)?);
    let shaping = crate::shaping::build(cfg, opts.clock.clone())?;
    let resolver = cartero_dns::MxResolver::new(&cfg.delivery.dns)?;
    let sites = Arc::new(crate::shaping::Sites(shaping.clone()));
    let router = Router::new(resolver, &cfg.delivery.routes, cfg.delivery.port, sites)?;
    let one_recipient_per_transaction = prepare.one_recipient_per_transaction();
    let workers = Arc::new(DeliveryCtx {
        clock: opts.clock.clone(),
        spool: spool.clone(),
        limits: shaping.clone(),
        router: Arc::new(router),
        classifier,
        sched: sched.clone(),
        pools: pools.clone(),
        timeouts: cfg.delivery.timeouts,
        tls_broken: Default::default(),
        prepare,
    });
    let ctx = QueueCtx {
        clock: opts.clock.clone(),
        limits: shaping.clone(),
        pools: pools.clone(),
        launcher: Arc::new(Workers(workers)),
        one_recipient_per_transaction,
        route_cache_ms: u64::try_from(cfg.delivery.route_cache.as_millis()).unwrap_or(u64::MAX),
        max_workers: cfg.delivery.max_connections,
    };
    let settler = Settler {
        spool: spool.clone(),
        events,
        clock: opts.clock.clone(),
        retry: cfg.delivery.retry.clone(),
        limits: shaping.clone(),
    };
    Ok(Delivery {
        scheduler: Scheduler::new(ctx, rx, settler),
        sched,
        shaping,
        inmail,
        pools,
    })
}

impl Delivery {
    /// Starts the scheduler (and with it delivery) and hands it what the spool recovered.
    async fn start(self, cfg: &MtaConfig, recovered: Vec<QRcpt>) -> Vec<JoinHandle<()>> {
        let tasks = vec![
            tokio::spawn(self.scheduler.run()),
            tokio::spawn(crate::shaping::persist_loop(
                self.shaping.clone(),
                cfg.data_dir.clone(),
            )),
        ];
        self.sched.send(Cmd::Enqueue(recovered)).await;
        tasks
    }
}

/// Spam complaints from inMail reach the complaint sweeps through the scheduler.
struct Complaints(SchedulerHandle);

impl crate::inmail::ComplaintFeed for Complaints {
    fn complaint(&self, source: &str, domain: &str) {
        let cmd = Cmd::Complaint {
            source: source.to_string(),
            domain: domain.to_string(),
        };
        // The complaint event is emitted whatever happens here; only the sweep misses it.
        if !self.0.try_send(cmd) {
            tracing::warn!(
                source,
                domain,
                "scheduler busy: complaint not charged to its sweep"
            );
            metrics::counter!("cartero_inmail_complaints_unswept_total").increment(1);
        }
    }
}

impl Mta {
    /// Opens the spool (resuming what it holds), binds the listeners and starts delivering, in
    /// that order: everything that can fail is done before any task starts, and delivery starts
    /// last, once the MTA is whole.
    pub async fn start(cfg: MtaConfig, opts: StartOptions) -> Result<Arc<Mta>, StartError> {
        for w in crate::validate::validate(&cfg)? {
            tracing::warn!("{w}");
        }
        tls::private_dir(&cfg.data_dir).map_err(|source| StartError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let listeners = bind_all(&cfg).await?;
        let tokens = Arc::new(api_tokens(&cfg)?);
        let acceptor = tls::acceptor(&cfg)?;
        let http_tls = cfg.http.tls.then(|| acceptor.clone());
        let (spool, recovered) = open_spool(&cfg, &opts)?;
        let classifier = match opts.classifier.clone() {
            Some(c) => c,
            None => Arc::new(RuleClassifier::from_paths(&cfg.bounce.rules_files)?),
        };
        let keys = open_keys(&cfg, &opts, &recovered)?;
        let recovered = recovered_rcpts(recovered, classifier.as_ref());
        let (mut fanout, file_sink, webhooks) = event_sinks(&cfg, &opts)?;
        let tail = BroadcastSink::new(TAIL_CAPACITY);
        fanout.push(Arc::new(tail.clone()));
        let events: Arc<dyn EventSink> = Arc::new(fanout);
        let lost = &spool.recovery_report().lost;
        report_lost(lost, &Outbox(spool.clone()), &*events, opts.clock.as_ref()).await?;
        let delivery = assemble_delivery(&cfg, &opts, &spool, classifier, events.clone())?;
        let injector = Arc::new(Injector {
            spool: spool.clone(),
            sched: delivery.sched.clone(),
            clock: opts.clock.clone(),
            events,
            hostname: cfg.hostname.clone(),
            default_validity: cfg.delivery.default_validity,
            max_validity: cfg.delivery.max_validity,
            keys,
            idempotency_window: cfg.delivery.idempotency_window,
        });
        let (stop, stop_rx) = watch::channel(false);
        let smtp_addrs = listeners
            .smtp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let mta = Arc::new(Mta {
            sched: delivery.sched.clone(),
            injector: injector.clone(),
            spool,
            stop,
            smtp_addrs,
            http_addr: listeners.http.local_addr().ok(),
            tokens,
            file_sink,
            webhooks,
            tail,
            grace: cfg.delivery.shutdown_grace,
            tasks: Mutex::new(Vec::new()),
            inmail: delivery.inmail.clone(),
            shaping: delivery.shaping.clone(),
            reloader: opts.reloader.clone(),
            data_dir: cfg.data_dir.clone(),
            clock: opts.clock.clone(),
        });
        let postmaster =
            inbound::postmaster_target(&cfg.smtp, &cfg.hostname, &cfg.inmail.bounce_domains)?;
        let policy = Arc::new(api::Policy::new(&cfg.http, delivery.pools.names()));
        let inbound = Arc::new(Inbound::new(
            cfg.smtp.clone(),
            cfg.hostname.clone(),
            acceptor,
            injector,
            mta.inmail.clone(),
            postmaster,
        ));
        let mut tasks = delivery.start(&cfg, recovered).await;
        let api = ApiState {
            tokens: mta.tokens.clone(),
            mta: mta.clone(),
            metrics: opts.metrics,
            policy,
            routes: opts.routes,
            public_routes: opts.public_routes,
            request_auth: opts.request_auth,
            openapi: Arc::new(opts.openapi.unwrap_or_else(api::openapi)),
        };
        tasks.extend(serve_all(&cfg, api, listeners, inbound, http_tls, stop_rx));
        *mta.tasks.lock() = tasks;
        Ok(mta)
    }
}

/// Starts serving SMTP and HTTP on the bound listeners.
fn serve_all(
    cfg: &MtaConfig,
    state: ApiState,
    listeners: Listeners,
    inbound: Arc<Inbound>,
    http_tls: Option<tokio_rustls::TlsAcceptor>,
    stop_rx: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = listeners
        .smtp
        .into_iter()
        .map(|l| tokio::spawn(inbound::serve(l, inbound.clone(), stop_rx.clone())))
        .collect();
    let app = api::router(state, cfg.http.max_body);
    let limits = crate::http_server::HttpLimits {
        header_timeout: cfg.http.header_timeout,
        max_connections: cfg.http.max_connections,
        tls: http_tls,
    };
    tasks.push(tokio::spawn(crate::http_server::serve(
        listeners.http,
        app,
        limits,
        stop_rx,
    )));
    tasks
}
