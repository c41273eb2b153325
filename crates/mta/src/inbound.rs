//! The SMTP injection listener: a tokio loop around the sans-I/O `cartero_smtp::server::Session`,
//! adding the policy the protocol crate must not know: relay control, authentication, connection
//! limits, timeouts and spooling.

use crate::auth;
use crate::auth_limit::AuthLimiter;
use crate::config::SmtpConfig;
use crate::inject::{InjectError, Injection, Injector, valid_address};
use crate::inmail::InMail;
use cartero_smtp::Reply;
use cartero_smtp::server::{Event, ServerConfig, Session};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub(crate) struct Inbound {
    pub cfg: SmtpConfig,
    pub hostname: String,
    pub tls: TlsAcceptor,
    pub injector: Arc<Injector>,
    /// Receives mail for the bounce domains, from any client.
    pub inmail: Option<Arc<InMail>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    auth_slots: tokio::sync::Semaphore,
    auth_limit: AuthLimiter,
    /// Where `RCPT TO:<postmaster>` (no domain) is delivered.
    postmaster: String,
}

/// Holds one connection slot of a client IP; released on drop.
struct Slot<'a> {
    inbound: &'a Inbound,
    ip: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut m = self.inbound.per_ip.lock();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Failed AUTH attempts allowed per session before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;
/// Password checks running at once, process-wide.
const AUTH_PARALLEL: usize = 2;

enum Next<S> {
    Done,
    StartTls(S, Box<Session>),
}

impl Inbound {
    pub fn new(
        cfg: SmtpConfig,
        hostname: String,
        tls: TlsAcceptor,
        injector: Arc<Injector>,
        inmail: Option<Arc<InMail>>,
        postmaster: String,
    ) -> Self {
        Self {
            auth_limit: AuthLimiter::new(&cfg.auth_limit, injector.clock.clone()),
            cfg,
            hostname,
            tls,
            injector,
            inmail,
            per_ip: Mutex::new(HashMap::new()),
            auth_slots: tokio::sync::Semaphore::new(AUTH_PARALLEL),
            postmaster,
        }
    }

    /// A client that may not relay can only send us bounces and complaints, which the report
    /// parser caps at `MAX_INPUT_BYTES`: it gets that limit instead of the relay limit, so anonymous
    /// clients cannot make the server buffer 50 MiB per connection.
    fn size_limit(&self, peer: IpAddr, authenticated: bool) -> usize {
        if self.may_relay(peer, authenticated) {
            self.cfg.max_message_size
        } else {
            self.cfg
                .max_message_size
                .min(cartero_bounce::report::MAX_INPUT_BYTES)
        }
    }

    fn session_config(&self, peer: IpAddr) -> ServerConfig {
        ServerConfig {
            hostname: self.hostname.clone(),
            max_message_size: self.size_limit(peer, false),
            max_recipients: self.cfg.max_recipients,
            max_errors: self.cfg.max_errors,
            starttls: true,
            auth: !self.cfg.users.is_empty(),
            auth_requires_tls: self.cfg.auth_requires_tls,
            ..ServerConfig::default()
        }
    }

    /// Takes a connection slot, or the reason to refuse the client.
    fn admit(&self, ip: IpAddr) -> Result<Slot<'_>, Reply> {
        let mut m = self.per_ip.lock();
        let total: usize = m.values().sum();
        if total >= self.cfg.max_connections {
            return Err(Reply::with_code(
                421,
                (4, 7, 0),
                "Too many connections, try again later",
            ));
        }
        let n = m.entry(ip).or_insert(0);
        if *n >= self.cfg.max_connections_per_ip {
            return Err(Reply::with_code(
                421,
                (4, 7, 0),
                "Too many connections from your address",
            ));
        }
        *n += 1;
        Ok(Slot { inbound: self, ip })
    }

    fn may_relay(&self, peer: IpAddr, authenticated: bool) -> bool {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
        let peer = peer.to_canonical();
        authenticated || self.cfg.relay_networks.iter().any(|n| n.contains(&peer))
    }
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let ib = inbound.clone();
                    tokio::spawn(async move { handle(ib, stream, peer).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

async fn handle(ib: Arc<Inbound>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let _slot = match ib.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(reply) => {
            let wait = ib.cfg.command_timeout;
            let _ = tokio::time::timeout(wait, stream.write_all(&reply.to_wire())).await;
            return;
        }
    };
    metrics::counter!("cartero_smtp_connections_total").increment(1);
    let session = Session::new(ib.session_config(peer.ip()), false);
    let mut greeting = session.greeting().to_wire();
    if flush(&mut stream, &mut greeting, ib.cfg.command_timeout)
        .await
        .is_err()
    {
        return;
    }
    if let Next::StartTls(stream, mut session) = drive(&ib, stream, session, peer).await {
        // A client that never starts the handshake must not hold its connection slot forever.
        match tokio::time::timeout(ib.cfg.command_timeout, ib.tls.accept(stream)).await {
            Ok(Ok(tls)) => {
                session.tls_established();
                drive(&ib, tls, *session, peer).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }
}

/// Runs the session over one stream until it ends or asks for TLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    ib: &Inbound,
    mut stream: S,
    mut session: Session,
    peer: SocketAddr,
) -> Next<S> {
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut auth_failures = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    // When the command being read must be complete: a client dripping a byte at a time must not
    // hold its connection past `command_timeout`. Cleared by every event the session produces.
    let mut deadline: Option<Instant> = None;
    loop {
        let event = session.next_event();
        if !matches!(event, Event::NeedMore) {
            deadline = None;
        }
        let reply = match event {
            Event::NeedMore => {
                if flush(&mut stream, &mut out, ib.cfg.command_timeout)
                    .await
                    .is_err()
                    || !read_more(ib, &mut stream, &mut session, &mut buf, &mut deadline).await
                {
                    return Next::Done;
                }
                continue;
            }
            Event::Reply(r) => r,
            Event::Helo { .. } => session.accept(),
            Event::MailFrom { address, .. } => sender_policy(&mut session, &address),
            Event::RcptTo { address } => rcpt_policy(ib, &mut session, &address, peer.ip()),
            Event::Auth {
                username, password, ..
            } => {
                let (r, close) = authenticate(
                    ib,
                    &mut session,
                    username,
                    password,
                    peer,
                    &mut auth_failures,
                )
                .await;
                if !close {
                    r
                } else {
                    r.write_to(&mut out);
                    let bye = Reply::with_code(421, (4, 7, 0), "Too many failed authentications");
                    return hang_up(ib, &mut stream, &mut out, bye).await;
                }
            }
            Event::StartTls => {
                out.extend_from_slice(&session.accept().to_wire());
                if flush(&mut stream, &mut out, ib.cfg.command_timeout)
                    .await
                    .is_err()
                {
                    return Next::Done;
                }
                return Next::StartTls(stream, Box::new(session));
            }
            Event::Message {
                sender,
                recipients,
                data,
            } => {
                // Replies to pipelined commands go out before we spend time spooling.
                if flush(&mut stream, &mut out, ib.cfg.command_timeout)
                    .await
                    .is_err()
                {
                    return Next::Done;
                }
                accept_message(ib, &mut session, sender, recipients, data, peer).await
            }
            Event::Quit(r) | Event::Close(r) => return hang_up(ib, &mut stream, &mut out, r).await,
        };
        reply.write_to(&mut out);
    }
}

/// Sends what is pending and `last`, then closes.
async fn hang_up<S: AsyncWrite + Unpin, T>(
    ib: &Inbound,
    stream: &mut S,
    out: &mut Vec<u8>,
    last: Reply,
) -> Next<T> {
    last.write_to(out);
    let _ = flush(stream, out, ib.cfg.command_timeout).await;
    let _ = stream.shutdown().await;
    Next::Done
}

fn sender_policy(session: &mut Session, address: &str) -> Reply {
    if address.is_empty() || valid_address(address) {
        session.accept()
    } else {
        session.reject(Reply::with_code(553, (5, 1, 7), "Invalid sender address"))
    }
}

/// Reads once into the session. Message data gets `data_timeout` per read (a large message may
/// take long as a whole); a command must be complete by `deadline`, set at the start of its wait.
/// False when the session is over (closed by the client, or timed out after a `421`).
async fn read_more<S: AsyncRead + AsyncWrite + Unpin>(
    ib: &Inbound,
    stream: &mut S,
    session: &mut Session,
    buf: &mut [u8],
    deadline: &mut Option<Instant>,
) -> bool {
    let until = if session.is_receiving_data() {
        *deadline = None;
        Instant::now() + ib.cfg.data_timeout
    } else {
        *deadline.get_or_insert_with(|| Instant::now() + ib.cfg.command_timeout)
    };
    match tokio::time::timeout_at(until, stream.read(buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(n)) => {
            session.feed(buf.get(..n).unwrap_or_default());
            true
        }
        Err(_) => {
            let r = Reply::with_code(421, (4, 4, 2), "Timeout, closing connection");
            let mut bye = r.to_wire();
            let _ = flush(stream, &mut bye, ib.cfg.command_timeout).await;
            false
        }
    }
}

/// Answers a completed AUTH exchange; the `bool` says the session must close (too many failures).
/// Clients past the back-off get `454 4.7.0` without their password being checked at all.
async fn authenticate(
    ib: &Inbound,
    session: &mut Session,
    username: String,
    password: String,
    peer: SocketAddr,
    failures: &mut u32,
) -> (Reply, bool) {
    let ticket = match ib.auth_limit.try_acquire(peer.ip()) {
        Ok(t) => t,
        Err((limit, first)) => {
            metrics::counter!("cartero_smtp_auth_limited_total").increment(1);
            if first {
                tracing::warn!(%peer, limit = limit.as_str(), "too many failed AUTH attempts: refusing AUTH unchecked until the back-off ends");
            }
            *failures += 1;
            let r = session.reject(Reply::with_code(
                454,
                (4, 7, 0),
                "Too many failed authentications, try again later",
            ));
            return (r, *failures >= MAX_AUTH_FAILURES);
        }
    };
    if check_auth(ib, username.clone(), password).await {
        ib.auth_limit.succeeded(ticket);
        session.set_max_message_size(ib.size_limit(peer.ip(), true));
        return (session.accept(), false);
    }
    *failures += 1;
    tracing::info!(%peer, user = ?username, "authentication failed");
    let r = session.reject(Reply::with_code(
        535,
        (5, 7, 8),
        "Authentication credentials invalid",
    ));
    (r, *failures >= MAX_AUTH_FAILURES)
}

/// `RCPT TO:<postmaster>` without a domain, which RFC 5321 §4.5.1 says must be accepted.
fn is_bare_postmaster(address: &str) -> bool {
    address.eq_ignore_ascii_case("postmaster")
}

/// `smtp.postmaster` is not a mailbox.
#[derive(Debug, thiserror::Error)]
#[error("smtp.postmaster: invalid address {0:?}")]
pub struct BadPostmaster(pub String);

/// The address `<postmaster>` is delivered to: `smtp.postmaster`, else `postmaster@` the first
/// bounce domain (inMail reads it), else `postmaster@hostname`. It is fixed by the operator, so
/// accepting it from anyone does not let a client choose where mail is relayed.
pub(crate) fn postmaster_target(
    smtp: &SmtpConfig,
    hostname: &str,
    bounce_domains: &[String],
) -> Result<String, BadPostmaster> {
    if !smtp.postmaster.is_empty() {
        if !valid_address(&smtp.postmaster) {
            return Err(BadPostmaster(smtp.postmaster.clone()));
        }
        return Ok(smtp.postmaster.clone());
    }
    let domain = match bounce_domains.first() {
        Some(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        None => hostname.to_string(),
    };
    Ok(format!("postmaster@{domain}"))
}

fn rcpt_policy(ib: &Inbound, session: &mut Session, address: &str, peer: IpAddr) -> Reply {
    if is_bare_postmaster(address) {
        return session.accept();
    }
    if !valid_address(address) {
        return session.reject(Reply::with_code(
            501,
            (5, 1, 3),
            "Invalid recipient address",
        ));
    }
    if let Some(im) = ib.inmail.as_ref().filter(|im| im.is_local(address)) {
        // Mail for the bounce domains is ours to read, never relayed: any client may send it.
        // Token validity is checked later and never shown in a reply.
        if im.local_part(address).is_none() {
            return session.reject(Reply::with_code(550, (5, 1, 1), "No such mailbox here"));
        }
        return session.accept();
    }
    if !ib.may_relay(peer, session.is_authenticated()) {
        metrics::counter!("cartero_smtp_relay_denied_total").increment(1);
        return session.reject(Reply::with_code(554, (5, 7, 1), "Relay access denied"));
    }
    session.accept()
}

async fn accept_message(
    ib: &Inbound,
    session: &mut Session,
    sender: String,
    recipients: Vec<String>,
    data: Vec<u8>,
    peer: SocketAddr,
) -> Reply {
    let recipients = recipients.into_iter().map(|r| {
        if is_bare_postmaster(&r) {
            ib.postmaster.clone()
        } else {
            r
        }
    });
    let (local, recipients): (Vec<String>, Vec<String>) = match &ib.inmail {
        Some(im) => recipients.partition(|r| im.is_local(r)),
        None => (Vec::new(), recipients.collect()),
    };
    if let Some(im) = ib.inmail.as_ref().filter(|_| !local.is_empty()) {
        let origin = crate::inmail::Origin {
            peer: peer.ip(),
            sender: &sender,
        };
        if !im.handle_message(&local, &data, &origin).await {
            return session.reject(Reply::with_code(
                451,
                (4, 3, 0),
                "Temporary local problem, try again later",
            ));
        }
        if recipients.is_empty() {
            return session.accept_message(Reply::with_code(250, (2, 0, 0), "Ok: received"));
        }
    }
    let proto = match (session.is_tls(), session.is_authenticated()) {
        (true, true) => "ESMTPSA",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (false, false) => "ESMTP",
    };
    let helo = session
        .helo_name()
        .unwrap_or("unknown")
        .replace(['\r', '\n'], "");
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    let trace = format!(
        "Received: from {helo} ([{}])\r\n\tby {} with {proto}; {date}\r\n",
        peer.ip(),
        ib.hostname
    );
    let (pool, body) = crate::inject::take_pool_header(data);
    let injection = Injection {
        sender,
        recipients,
        body,
        trace: Some(trace),
        pool,
        ..Injection::default()
    };
    match ib.injector.inject(injection).await {
        Ok(done) => session.accept_message(Reply::with_code(
            250,
            (2, 0, 0),
            format!("Ok: queued as {}", done.message_id),
        )),
        Err(e @ InjectError::Spool(_)) => {
            tracing::error!(error = %e, "cannot spool message");
            session.reject(Reply::with_code(
                451,
                (4, 3, 0),
                "Temporary local problem, try again later",
            ))
        }
        Err(e) => session.reject(Reply::with_code(
            554,
            (5, 6, 0),
            format!("Message refused: {e}"),
        )),
    }
}

/// Writes the pending replies. A client that stops reading cannot hold its connection slot:
/// the write gives up after the command timeout.
async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    timeout: Duration,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(out).await?;
        stream.flush().await
    };
    let r = tokio::time::timeout(timeout, write).await;
    out.clear();
    r.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading"))?
}

/// Checks credentials off the async threads (PBKDF2 is deliberately slow) and with at most
/// `AUTH_PARALLEL` checks at once, so AUTH floods cannot stall delivery or other sessions.
async fn check_auth(ib: &Inbound, username: String, password: String) -> bool {
    let Ok(_permit) = ib.auth_slots.acquire().await else {
        return false;
    };
    let users = ib.cfg.users.clone();
    tokio::task::spawn_blocking(move || auth::authenticate(&users, &username, &password))
        .await
        .unwrap_or(false)
}
