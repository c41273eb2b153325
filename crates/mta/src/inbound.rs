//! The SMTP injection listener: a tokio loop around the sans-I/O `cartero_smtp::server::Session`,
//! adding the policy the protocol crate must not know: relay control, authentication, connection
//! limits, timeouts and spooling.

use crate::auth;
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
    ) -> Self {
        Self {
            cfg,
            hostname,
            tls,
            injector,
            inmail,
            per_ip: Mutex::new(HashMap::new()),
            auth_slots: tokio::sync::Semaphore::new(AUTH_PARALLEL),
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
    loop {
        let reply = match session.next_event() {
            Event::NeedMore => {
                if flush(&mut stream, &mut out, ib.cfg.command_timeout)
                    .await
                    .is_err()
                {
                    return Next::Done;
                }
                let timeout = if session.is_receiving_data() {
                    ib.cfg.data_timeout
                } else {
                    ib.cfg.command_timeout
                };
                match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Next::Done,
                    Ok(Ok(n)) => session.feed(&buf[..n]),
                    Err(_) => {
                        let r = Reply::with_code(421, (4, 4, 2), "Timeout, closing connection");
                        let mut bye = r.to_wire();
                        let _ = flush(&mut stream, &mut bye, ib.cfg.command_timeout).await;
                        return Next::Done;
                    }
                }
                continue;
            }
            Event::Reply(r) => r,
            Event::Helo { .. } => session.accept(),
            Event::MailFrom { address, .. } => {
                if address.is_empty() || valid_address(&address) {
                    session.accept()
                } else {
                    session.reject(Reply::with_code(553, (5, 1, 7), "Invalid sender address"))
                }
            }
            Event::RcptTo { address } => rcpt_policy(ib, &mut session, &address, peer.ip()),
            Event::Auth {
                username, password, ..
            } => {
                if check_auth(ib, username.clone(), password).await {
                    session.set_max_message_size(ib.size_limit(peer.ip(), true));
                    session.accept()
                } else {
                    auth_failures += 1;
                    tracing::info!(%peer, user = ?username, "authentication failed");
                    let r = session.reject(Reply::with_code(
                        535,
                        (5, 7, 8),
                        "Authentication credentials invalid",
                    ));
                    if auth_failures >= MAX_AUTH_FAILURES {
                        r.write_to(&mut out);
                        let bye =
                            Reply::with_code(421, (4, 7, 0), "Too many failed authentications");
                        bye.write_to(&mut out);
                        let _ = flush(&mut stream, &mut out, ib.cfg.command_timeout).await;
                        return Next::Done;
                    }
                    r
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
            Event::Quit(r) | Event::Close(r) => {
                r.write_to(&mut out);
                let _ = flush(&mut stream, &mut out, ib.cfg.command_timeout).await;
                let _ = stream.shutdown().await;
                return Next::Done;
            }
        };
        reply.write_to(&mut out);
    }
}

fn rcpt_policy(ib: &Inbound, session: &mut Session, address: &str, peer: IpAddr) -> Reply {
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
    let (local, recipients): (Vec<String>, Vec<String>) = match &ib.inmail {
        Some(im) => recipients.into_iter().partition(|r| im.is_local(r)),
        None => (Vec::new(), recipients),
    };
    if let Some(im) = ib.inmail.as_ref().filter(|_| !local.is_empty()) {
        let origin = crate::inmail::Origin {
            peer: peer.ip(),
            sender: &sender,
        };
        im.handle_message(&local, &data, &origin);
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
