//! Tokio driver for the outbound client: connects (optionally from a given local IP), reads the
//! banner, says EHLO (HELO fallback), upgrades with STARTTLS per [`TlsMode`] and runs mail
//! transactions planned by [`crate::client::Transaction`], each phase under its own timeout.

mod options;
mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

pub use crate::client::Phase;
use crate::client::{
    Action, BodyMode, Capabilities, Completed, DotStuffer, Envelope, ReplyReader, Transaction,
    TransactionResult,
};
use crate::reply::Reply;
pub use options::{PhaseTimeouts, Timeouts, TlsMode};
use tls::Stream;
pub use tls::{TlsSetupError, unverified_config};

/// Bytes per socket write when sending a body; commands go in a single write each batch.
const WRITE_CHUNK: usize = 64 * 1024;
const READ_BUF: usize = 8 * 1024;

/// How to open sessions.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name given in EHLO/HELO (the egress source's HELO name).
    pub helo_name: String,
    /// Local address to bind before connecting (the egress source IP).
    pub local_ip: Option<IpAddr>,
    pub tls: TlsMode,
    pub timeouts: Timeouts,
    /// Trust anchors for [`TlsMode::RequiredVerified`]; `None` uses the system's roots.
    pub tls_roots: Option<Arc<RootCertStore>>,
}

impl ClientConfig {
    /// Opportunistic TLS, default timeouts, no local bind.
    pub fn new(helo_name: impl Into<String>) -> Self {
        Self {
            helo_name: helo_name.into(),
            local_ip: None,
            tls: TlsMode::default(),
            timeouts: Timeouts::default(),
            tls_roots: None,
        }
    }
}

/// Why a session or transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timeout during {phase}")]
    Timeout { phase: Phase },
    #[error("TLS failure: {0}")]
    Tls(String),
    #[error("STARTTLS required but not offered by the server")]
    TlsUnavailable,
    #[error("{phase} rejected: {reply}")]
    Rejected { phase: Phase, reply: Reply },
    #[error("protocol error during {phase}: {detail}")]
    Protocol { phase: Phase, detail: String },
    #[error("I/O error during {phase}: {source}")]
    Io { phase: Phase, source: io::Error },
    #[error("connection closed by the server during {phase}")]
    Closed { phase: Phase },
    #[error("the session is not in a reusable state")]
    NotReusable,
}

impl ClientError {
    /// The phase the error happened in, when known.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            ClientError::Connect { .. } => Some(Phase::Connect),
            ClientError::Tls(_) | ClientError::TlsUnavailable => Some(Phase::StartTls),
            ClientError::Timeout { phase }
            | ClientError::Rejected { phase, .. }
            | ClientError::Protocol { phase, .. }
            | ClientError::Io { phase, .. }
            | ClientError::Closed { phase } => Some(*phase),
            ClientError::NotReusable => None,
        }
    }

    /// True when the session failed before any transaction started: nothing was sent for any
    /// message, so the caller should try the next MX host.
    pub fn is_connection_level(&self) -> bool {
        matches!(
            self.phase(),
            Some(Phase::Connect | Phase::Banner | Phase::Ehlo | Phase::Helo | Phase::StartTls)
        )
    }
}

/// The stream and the reply reader, with timed reads and writes.
struct Wire {
    stream: Stream,
    reader: ReplyReader,
    buf: Box<[u8]>,
}

impl Wire {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            reader: ReplyReader::new(),
            buf: vec![0; READ_BUF].into_boxed_slice(),
        }
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        phase: Phase,
        limit: Duration,
    ) -> Result<(), ClientError> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        timeout(limit, io)
            .await
            .map_err(|_| ClientError::Timeout { phase })?
            .map_err(|source| ClientError::Io { phase, source })
    }

    async fn read_reply(&mut self, phase: Phase, limit: Duration) -> Result<Reply, ClientError> {
        let reply = timeout(limit, self.read_reply_untimed(phase))
            .await
            .map_err(|_| ClientError::Timeout { phase })??;
        tracing::trace!(%phase, %reply, "smtp reply");
        Ok(reply)
    }

    async fn read_reply_untimed(&mut self, phase: Phase) -> Result<Reply, ClientError> {
        loop {
            if let Some(reply) = self.reader.next_reply() {
                return Ok(reply);
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .await
                .map_err(|source| ClientError::Io { phase, source })?;
            if n == 0 {
                return Err(ClientError::Closed { phase });
            }
            let input = self.buf.get(..n).unwrap_or_default();
            self.reader.feed(input).map_err(|e| ClientError::Protocol {
                phase,
                detail: e.to_string(),
            })?;
        }
    }

    /// Sends one command and reads its reply.
    async fn command(
        &mut self,
        cmd: &str,
        phase: Phase,
        t: &Timeouts,
    ) -> Result<Reply, ClientError> {
        let limit = t.for_phase(phase);
        self.write(cmd.as_bytes(), phase, limit).await?;
        self.read_reply(phase, limit).await
    }
}

/// One SMTP session to a server, reusable for many transactions.
pub struct Connection {
    wire: Wire,
    caps: Capabilities,
    remote: SocketAddr,
    local: SocketAddr,
    timeouts: Timeouts,
    banner: Reply,
    reusable: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("tls", &self.is_tls())
            .field("reusable", &self.reusable)
            .finish_non_exhaustive()
    }
}

async fn tcp_connect(addr: SocketAddr, cfg: &ClientConfig) -> Result<TcpStream, ClientError> {
    let err = |source| ClientError::Connect { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    if let Some(ip) = cfg.local_ip {
        socket.bind(SocketAddr::new(ip, 0)).map_err(err)?;
    }
    let stream = timeout(cfg.timeouts.connect, socket.connect(addr))
        .await
        .map_err(|_| ClientError::Timeout {
            phase: Phase::Connect,
        })?
        .map_err(err)?;
    // Commands wait for replies; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// EHLO, or HELO when EHLO gets a permanent error.
async fn greet(wire: &mut Wire, cfg: &ClientConfig) -> Result<Capabilities, ClientError> {
    let t = &cfg.timeouts;
    let ehlo = wire
        .command(&format!("EHLO {}\r\n", cfg.helo_name), Phase::Ehlo, t)
        .await?;
    if ehlo.code / 100 == 2 {
        return Ok(Capabilities::from_ehlo(&ehlo));
    }
    if ehlo.code / 100 != 5 {
        return Err(ClientError::Rejected {
            phase: Phase::Ehlo,
            reply: ehlo,
        });
    }
    let helo = wire
        .command(&format!("HELO {}\r\n", cfg.helo_name), Phase::Helo, t)
        .await?;
    if helo.code / 100 == 2 {
        Ok(Capabilities::default())
    } else {
        Err(ClientError::Rejected {
            phase: Phase::Helo,
            reply: helo,
        })
    }
}

/// Sends STARTTLS and upgrades. `Ok(None)` hands the plaintext session back when the server
/// refused and the mode allows going on without TLS.
async fn starttls(
    mut wire: Wire,
    server_name: &str,
    remote: SocketAddr,
    cfg: &ClientConfig,
) -> Result<Result<Wire, Wire>, ClientError> {
    let reply = wire
        .command("STARTTLS\r\n", Phase::StartTls, &cfg.timeouts)
        .await?;
    if reply.code != 220 {
        if cfg.tls == TlsMode::Opportunistic {
            return Ok(Err(wire));
        }
        return Err(ClientError::Rejected {
            phase: Phase::StartTls,
            reply,
        });
    }
    if !wire.reader.is_empty() {
        // Anything sent before the handshake would be trusted as if it came over TLS.
        return Err(ClientError::Protocol {
            phase: Phase::StartTls,
            detail: "data pipelined after the STARTTLS reply".into(),
        });
    }
    let Stream::Plain(tcp) = wire.stream else {
        return Err(ClientError::Tls("STARTTLS on a TLS session".into()));
    };
    let config = if cfg.tls == TlsMode::RequiredVerified {
        tls::verified_config(cfg.tls_roots.as_ref())
    } else {
        tls::unverified_config()
    }
    .map_err(|e| ClientError::Tls(e.to_string()))?;
    let name = ServerName::try_from(server_name.to_owned())
        .unwrap_or_else(|_| ServerName::from(remote.ip()));
    let handshake = TlsConnector::from(config).connect(name, tcp);
    let stream = timeout(cfg.timeouts.starttls, handshake)
        .await
        .map_err(|_| ClientError::Timeout {
            phase: Phase::StartTls,
        })?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(Ok(Wire::new(Stream::Tls(Box::new(stream)))))
}

impl Connection {
    /// Opens a session: connect (from `cfg.local_ip` if set), banner (must be 2xx), EHLO (HELO
    /// on a 5xx), STARTTLS per `cfg.tls` and EHLO again. `server_name` is the MX host name,
    /// used for SNI and verification.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        cfg: &ClientConfig,
    ) -> Result<Connection, ClientError> {
        let tcp = tcp_connect(addr, cfg).await?;
        let local = tcp.local_addr().map_err(|source| ClientError::Io {
            phase: Phase::Connect,
            source,
        })?;
        let mut wire = Wire::new(Stream::Plain(tcp));
        let banner = wire.read_reply(Phase::Banner, cfg.timeouts.banner).await?;
        if banner.code / 100 != 2 {
            return Err(ClientError::Rejected {
                phase: Phase::Banner,
                reply: banner,
            });
        }
        let mut caps = greet(&mut wire, cfg).await?;
        let want_tls = match cfg.tls {
            TlsMode::Disabled => false,
            TlsMode::Opportunistic => caps.starttls,
            TlsMode::Required | TlsMode::RequiredVerified if !caps.starttls => {
                return Err(ClientError::TlsUnavailable);
            }
            TlsMode::Required | TlsMode::RequiredVerified => true,
        };
        if want_tls {
            wire = match starttls(wire, server_name, addr, cfg).await? {
                Ok(mut tls_wire) => {
                    caps = greet(&mut tls_wire, cfg).await?;
                    tls_wire
                }
                Err(plain) => plain,
            };
        }
        tracing::debug!(%addr, %local, tls = matches!(wire.stream, Stream::Tls(_)), "smtp session open");
        Ok(Connection {
            wire,
            caps,
            remote: addr,
            local,
            timeouts: cfg.timeouts,
            banner,
            reusable: true,
        })
    }

    /// What the server offered (after STARTTLS, the second EHLO's answer).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// True once STARTTLS succeeded.
    pub fn is_tls(&self) -> bool {
        matches!(self.wire.stream, Stream::Tls(_))
    }

    /// The server's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Our side of the connection.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The server's greeting.
    pub fn banner(&self) -> &Reply {
        &self.banner
    }

    /// False after an error or a 421: open a new connection instead.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Runs one transaction. Replies from the server (or a local refusal, see
    /// [`Transaction::plan`]) come back as `Ok`; `Err` means the session broke and the fate of
    /// the message is unknown (treat as transient). Sends RSET when the transaction did not
    /// reach the end of the body, so the session can be reused.
    pub async fn send(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
    ) -> Result<TransactionResult, ClientError> {
        if !self.reusable {
            return Err(ClientError::NotReusable);
        }
        let env = Envelope::for_message(sender, recipients, body);
        let mut tx = match Transaction::plan(&self.caps, &env) {
            Ok(tx) => tx,
            Err(refused) => return Ok(refused),
        };
        // Until the transaction ends cleanly the session state is unknown.
        self.reusable = false;
        loop {
            match tx.next_action() {
                Action::Write { bytes, phase } => {
                    let limit = self.timeouts.for_phase(phase);
                    self.wire.write(&bytes, phase, limit).await?;
                }
                Action::WriteBody { mode } => self.write_body(mode, body).await?,
                Action::Read { phase } => {
                    let limit = self.timeouts.for_phase(phase);
                    let reply = self.wire.read_reply(phase, limit).await?;
                    tx.on_reply(reply).map_err(|e| ClientError::Protocol {
                        phase,
                        detail: e.to_string(),
                    })?;
                }
                Action::Done => break,
            }
        }
        let Completed { result, needs_rset } = tx.finish();
        let closing = std::iter::once(&result.mail)
            .chain(&result.rcpts)
            .chain(&result.data)
            .any(|r| r.code == 421);
        if closing {
            return Ok(result);
        }
        self.reusable = true;
        if needs_rset && let Err(e) = self.rset().await {
            tracing::debug!(remote = %self.remote, error = %e, "RSET after failed transaction");
        }
        Ok(result)
    }

    async fn write_body(&mut self, mode: BodyMode, body: &[u8]) -> Result<(), ClientError> {
        let limit = self.timeouts.data_end;
        let phase = Phase::DataEnd;
        let mut out = Vec::with_capacity(WRITE_CHUNK.min(body.len()) + WRITE_CHUNK / 8);
        match mode {
            BodyMode::Data => {
                let mut stuffer = DotStuffer::new();
                for chunk in body.chunks(WRITE_CHUNK) {
                    stuffer.push(chunk, &mut out);
                    if out.len() >= WRITE_CHUNK {
                        self.wire.write(&out, phase, limit).await?;
                        out.clear();
                    }
                }
                stuffer.finish(&mut out);
            }
            BodyMode::Bdat => {
                out.extend_from_slice(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
                for chunk in body.chunks(WRITE_CHUNK) {
                    out.extend_from_slice(chunk);
                    if out.len() >= WRITE_CHUNK {
                        self.wire.write(&out, phase, limit).await?;
                        out.clear();
                    }
                }
            }
        }
        if !out.is_empty() {
            self.wire.write(&out, phase, limit).await?;
        }
        Ok(())
    }

    /// Resets the session. A refusal leaves the session unusable.
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        self.reusable = false;
        let reply = self
            .wire
            .command("RSET\r\n", Phase::Rset, &self.timeouts)
            .await?;
        if reply.code / 100 != 2 {
            return Err(ClientError::Rejected {
                phase: Phase::Rset,
                reply,
            });
        }
        self.reusable = true;
        Ok(())
    }

    /// Says QUIT and closes, best effort within the QUIT timeout. Returns once the server has
    /// closed its side too (or the timeout passed): a server that counts connections per
    /// client frees the slot when it closes, so a connection opened after this returns is not
    /// refused for one that is still going away.
    pub async fn quit(mut self) {
        let limit = self.timeouts.for_phase(Phase::Quit);
        let _ = timeout(limit, async {
            if self
                .wire
                .command("QUIT\r\n", Phase::Quit, &self.timeouts)
                .await
                .is_ok()
            {
                let _ = self.wire.stream.shutdown().await;
                // Whatever a server still sends after its 221 is discarded; one that keeps the
                // connection open costs a second at most.
                let mut buf = [0u8; 512];
                let _ = timeout(Duration::from_secs(1), async {
                    for _ in 0..8 {
                        match self.wire.stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
            }
        })
        .await;
    }
}
