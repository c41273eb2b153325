//! Connection workers: connect to a destination (next MX on connection failure), then send the
//! batches the scheduler hands out until the per-connection limit, idleness or an error ends it.
//! Workers report outcomes; they never decide what an outcome means (that is `queue::settle`).

use crate::outcome::{AttemptContext, Failure, Lane, Outcome};
use crate::pools::{Pools, SourceInfo};
use crate::queue::{Batch, Cmd, Launcher, QRcpt, SchedulerHandle};
use crate::routing::{Destination, HostTarget, Router};
use cartero_bounce::{BounceClass, Classifier};
use cartero_clock::SharedClock;
use cartero_shaping::{ConnectionPermit, Limits, Params, QueueKey, Target};
use cartero_smtp::client::Phase;
use cartero_smtp::io::{ClientConfig, ClientError, Connection, Timeouts, TlsMode};
use cartero_spool::Spool;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What connection workers and route lookups need.
pub(crate) struct DeliveryCtx {
    pub clock: SharedClock,
    pub spool: Spool,
    pub limits: Arc<dyn Limits>,
    pub router: Arc<Router>,
    pub classifier: Arc<dyn Classifier>,
    pub sched: SchedulerHandle,
    /// Egress sources and pools.
    pub pools: Arc<Pools>,
    pub timeouts: Timeouts,
    /// Hosts whose STARTTLS handshake failed, until when (clock ms): opportunistic TLS skips them.
    pub tls_broken: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
    /// Per-recipient headers and DKIM signing at send time.
    pub prepare: Arc<crate::prepare::Preparer>,
}

/// How long a failed opportunistic STARTTLS is remembered for a host.
const TLS_BROKEN_MS: u64 = 3_600_000;

impl DeliveryCtx {
    fn tls_known_broken(&self, host: &str) -> bool {
        let now = self.clock.now_ms();
        let mut broken = self.tls_broken.lock();
        match broken.get(host) {
            Some(&until) if until > now => true,
            Some(_) => {
                broken.remove(host);
                false
            }
            None => false,
        }
    }

    fn remember_tls_broken(&self, host: &str) {
        let until = self.clock.now_ms() + TLS_BROKEN_MS;
        self.tls_broken.lock().insert(host.to_string(), until);
    }
}

/// Starts route lookups and connection workers for the scheduler.
pub(crate) struct Workers(pub Arc<DeliveryCtx>);

impl Launcher for Workers {
    /// Resolves a domain in its own task. A panic there still reports a (transient) result, so
    /// the domain's recipients are never left waiting for a route forever.
    fn resolve(&self, domain: Arc<str>) {
        let ctx = self.0.clone();
        tokio::spawn(async move {
            let inner = {
                let (ctx, domain) = (ctx.clone(), domain.clone());
                tokio::spawn(async move { route(&ctx, &domain).await })
            };
            let result = inner.await.unwrap_or_else(|e| {
                tracing::error!(%domain, error = %e, "route lookup task failed");
                Err(Outcome::Transient(Failure::local(
                    "internal error while routing",
                    BounceClass::TRANSIENT,
                    "local:panic",
                )))
            });
            ctx.sched.send(Cmd::Routed { domain, result }).await;
        });
    }

    fn connect(
        &self,
        key: QueueKey,
        dest: Arc<Destination>,
        domain: Arc<str>,
        mut permit: ConnectionPermit,
    ) {
        let ctx = self.0.clone();
        // The worker runs in an inner task so that even a panic ends in a WorkerExit: the
        // scheduler's connection counts stay right (the permit is dropped with the task, also
        // when it unwinds) and shutdown does not wait for a worker that is gone.
        tokio::spawn(async move {
            let inner = {
                let (ctx, key) = (ctx.clone(), key.clone());
                tokio::spawn(async move {
                    run_connection(&ctx, &key, &dest, &domain, &mut permit)
                        .await
                        .err()
                })
            };
            let failure = inner.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "delivery worker failed");
                None
            });
            ctx.sched.send(Cmd::WorkerExit { key, failure }).await;
        });
    }
}

/// The destination of a domain, or the outcome of the lookup for everything waiting for it.
async fn route(ctx: &DeliveryCtx, domain: &str) -> Result<Arc<Destination>, Outcome> {
    ctx.router.route(domain).await.map(Arc::new)
}

fn client_config(ctx: &DeliveryCtx, source: &SourceInfo, params: &Params) -> ClientConfig {
    ClientConfig {
        helo_name: source.helo.clone(),
        local_ip: source.ip,
        tls: params.tls,
        // A shaping layer's phase timeout wins over `[delivery.timeouts]`.
        timeouts: params.timeouts.over(&ctx.timeouts),
        tls_roots: None,
    }
}

/// Connects and sends until done. `Err` only when no host could be reached at all.
async fn run_connection(
    ctx: &DeliveryCtx,
    key: &QueueKey,
    dest: &Destination,
    domain: &str,
    permit: &mut ConnectionPermit,
) -> Result<(), Failure> {
    let target = Target {
        domain,
        provider: dest.provider.as_deref(),
    };
    let params = ctx.limits.params(key, &target);
    let Some(source) = ctx.pools.source(&key.source) else {
        // Queues are only made for configured sources; a reload cannot remove one.
        let text = format!("unknown egress source {}", key.source);
        return Err(Failure::local(text, BounceClass::SOFT, "local:source"));
    };
    let cfg = client_config(ctx, source, &params);
    let lane = Lane {
        key: key.clone(),
        provider: dest.provider.clone(),
    };
    let (mut conn, at) = connect_any(ctx, dest, &cfg, lane).await?;
    permit.established();
    let mut sent = 0u32;
    while sent < params.max_messages_per_connection.max(1) {
        match next_batch(ctx, key).await {
            Batch::Done => break,
            Batch::WaitUntil(t) => {
                let wait = t.saturating_sub(ctx.clock.now_ms()).min(60_000);
                tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
            }
            Batch::Send(rcpts) => {
                sent += 1;
                let (results, reusable) = send_batch(ctx, &mut conn, rcpts, key, &at).await;
                ctx.sched.send(Cmd::Settled(results, at.clone())).await;
                if !reusable {
                    return Ok(());
                }
            }
        }
    }
    conn.quit().await;
    Ok(())
}

/// Asks for work; parks while the queue is empty, up to the idle timeout.
async fn next_batch(ctx: &DeliveryCtx, key: &QueueKey) -> Batch {
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    ctx.sched
        .send(Cmd::NextBatch {
            key: key.clone(),
            wait: true,
            reply,
        })
        .await;
    match tokio::time::timeout(ctx.timeouts.idle, &mut rx).await {
        Ok(Ok(batch)) => batch,
        Ok(Err(_)) => Batch::Done,
        Err(_) => {
            // Close first, then look: a batch sent just before the close is taken, not dropped.
            rx.close();
            rx.try_recv().unwrap_or(Batch::Done)
        }
    }
}

async fn host_addresses(
    router: &Router,
    host: &HostTarget,
) -> Result<Vec<IpAddr>, cartero_dns::DnsError> {
    if let Ok(ip) = host.name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    router.resolver().addresses(&host.name).await
}

/// Tries every host in preference order and every address of each, as RFC 5321 §5.1 asks.
async fn connect_any(
    ctx: &DeliveryCtx,
    dest: &Destination,
    cfg: &ClientConfig,
    lane: Lane,
) -> Result<(Connection, AttemptContext), Failure> {
    let mut last: Option<Failure> = None;
    for host in &dest.hosts {
        let addrs = match host_addresses(&ctx.router, host).await {
            Ok(a) => a,
            Err(e) => {
                let f = Failure::local(e.to_string(), BounceClass::DNS_FAILURE, "dns:mx-host");
                last = Some(f);
                continue;
            }
        };
        for ip in addrs {
            let addr = SocketAddr::new(ip, host.port);
            match connect_one(ctx, addr, &host.name, cfg).await {
                Ok(conn) => {
                    let at = AttemptContext {
                        mx_host: Some(host.name.clone()),
                        sending_ip: cfg.local_ip.map(|ip| ip.to_string()),
                        tls: Some(conn.is_tls()),
                        lane: Some(lane),
                        connection_failed: false,
                    };
                    return Ok((conn, at));
                }
                Err(e) => {
                    tracing::debug!(host = %host.name, %addr, error = %e, "connection failed");
                    last = Some(client_failure(&e, ctx.classifier.as_ref(), &host.name));
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Failure::local(
            "no host to connect to",
            BounceClass::DNS_FAILURE,
            "dns:no-host",
        )
    }))
}

/// Connects to one address. Opportunistic TLS that fails its handshake is retried at once in
/// plain text, and the host is remembered so the next connections do not try TLS again for a while.
async fn connect_one(
    ctx: &DeliveryCtx,
    addr: SocketAddr,
    host: &str,
    cfg: &ClientConfig,
) -> Result<Connection, ClientError> {
    let opportunistic = matches!(cfg.tls, TlsMode::Opportunistic);
    if opportunistic && ctx.tls_known_broken(host) {
        let plain = ClientConfig {
            tls: TlsMode::Disabled,
            ..cfg.clone()
        };
        return Connection::connect(addr, host, &plain).await;
    }
    match Connection::connect(addr, host, cfg).await {
        // Any failure inside the STARTTLS exchange (handshake alert, garbage, a close) counts.
        Err(e) if opportunistic && e.phase() == Some(Phase::StartTls) => {
            tracing::info!(%host, error = %e, "STARTTLS failed; retrying without TLS");
            ctx.remember_tls_broken(host);
            let plain = ClientConfig {
                tls: TlsMode::Disabled,
                ..cfg.clone()
            };
            Connection::connect(addr, host, &plain).await
        }
        other => other,
    }
}

/// A failure of the connection itself (not a reply to our transaction) is always transient.
fn client_failure(e: &ClientError, classifier: &dyn Classifier, host: &str) -> Failure {
    match e {
        ClientError::Rejected { reply, .. } => {
            let mut f = Failure::from_reply(reply.clone(), classifier, Some(host));
            f.text = format!("{e}");
            f
        }
        ClientError::Timeout { .. } => {
            Failure::local(e.to_string(), BounceClass::TIMEOUT, "connection:timeout")
        }
        _ => Failure::local(e.to_string(), BounceClass::SOFT, "connection:error"),
    }
}

/// Sends one message to its batch of recipients. Returns the outcomes and whether the connection
/// can carry another transaction.
async fn send_batch(
    ctx: &DeliveryCtx,
    conn: &mut Connection,
    rcpts: Vec<QRcpt>,
    key: &QueueKey,
    at: &AttemptContext,
) -> (Vec<(QRcpt, Outcome)>, bool) {
    let host = at.mx_host.as_deref().unwrap_or("");
    let Some(msg) = rcpts.first().map(|r| r.msg.clone()) else {
        return (Vec::new(), true);
    };
    let body = match ctx.spool.read_body(msg.id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(message = %msg.id, error = %e, "cannot read message body from spool");
            let f = Failure::local(
                format!("spool read error: {e}"),
                BounceClass::UNDETERMINED,
                "local:spool",
            );
            return (
                rcpts
                    .into_iter()
                    .map(|r| (r, Outcome::Transient(f.clone())))
                    .collect(),
                true,
            );
        }
    };
    let addrs: Vec<String> = rcpts.iter().map(|r| r.address().to_string()).collect();
    let classifier = ctx.classifier.as_ref();
    // With inMail, batches hold one recipient (see `Preparer::one_recipient_per_transaction`).
    let idx = rcpts.first().map_or(0, |r| r.idx);
    let tx = ctx.prepare.prepare(&msg, idx, &key.source, &body);
    match conn.send(&tx.sender, &addrs, &tx.body).await {
        Ok(res) => {
            let outcomes = rcpts
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    // A 250 to RCPT is not a delivery: only the reply after the data is.
                    let reply = match res.rcpts.get(i) {
                        Some(rr) if !rr.is_positive() => Some(rr.clone()),
                        Some(_) => res.data.clone(),
                        None => Some(res.mail.clone()),
                    };
                    // When MAIL FROM failed, every recipient carries its reply.
                    let refused_sender = !res.mail.is_positive();
                    let o = match reply {
                        Some(reply) => {
                            let mut o = Outcome::from_reply(reply, classifier, Some(host));
                            if let Outcome::Transient(f) | Outcome::Permanent(f) = &mut o {
                                f.session = refused_sender;
                            }
                            o
                        }
                        None => Outcome::Transient(Failure::local(
                            "transaction ended before the data was accepted",
                            BounceClass::SOFT,
                            "connection:aborted",
                        )),
                    };
                    (r, o)
                })
                .collect();
            // A 421 (or any reply that closed the session) ends the connection here, so the next
            // batch is not charged an attempt on a dead connection.
            (outcomes, conn.is_reusable())
        }
        Err(e) => {
            let f = client_failure(&e, classifier, host);
            (
                rcpts
                    .into_iter()
                    .map(|r| (r, Outcome::Transient(f.clone())))
                    .collect(),
                false,
            )
        }
    }
}
