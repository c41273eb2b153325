//! A raw SMTP client for the injection listener: lines in, replies out, over plain TCP or TLS
//! after STARTTLS (without certificate verification: the MTA's certificate is self-signed).

use cartero_smtp::Reply;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Longest wait for one reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// An SMTP client that sends exactly what it is given.
pub struct RawClient<S> {
    stream: S,
    buf: Vec<u8>,
}

impl RawClient<TcpStream> {
    /// Connects and reads the banner.
    pub async fn connect(addr: SocketAddr) -> (Self, Reply) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut c = RawClient {
            stream,
            buf: Vec::new(),
        };
        let banner = c.reply().await.expect("banner");
        (c, banner)
    }

    /// Connects from `local` (another loopback address: a second client IP) and reads the banner.
    pub async fn connect_from(addr: SocketAddr, local: std::net::IpAddr) -> (Self, Reply) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(local, 0)).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let mut c = RawClient {
            stream,
            buf: Vec::new(),
        };
        let banner = c.reply().await.expect("banner");
        (c, banner)
    }

    /// Sends STARTTLS (expects 220) and upgrades without verifying the certificate.
    pub async fn starttls(mut self) -> RawClient<TlsStream<TcpStream>> {
        let r = self.cmd("STARTTLS").await.expect("STARTTLS reply");
        assert_eq!(r.code, 220, "{r}");
        let cfg = cartero_smtp::io::unverified_config().expect("TLS client config");
        let name = ServerName::try_from("mta.test").unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, self.stream)
            .await
            .unwrap();
        RawClient {
            stream: tls,
            buf: Vec::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends `line` + CRLF and reads one reply.
    pub async fn cmd(&mut self, line: &str) -> Option<Reply> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await.ok()?;
        self.reply().await
    }

    /// Reads one (possibly multi-line) reply; `None` when the server closed the connection.
    pub async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(REPLY_WAIT, self.reply_untimed())
            .await
            .expect("no reply from the server in time")
    }

    /// Like [`Self::reply`] but gives up after `wait`: `Err` when nothing complete arrived yet.
    /// What was read so far is kept for the next call.
    pub async fn reply_within(&mut self, wait: Duration) -> Result<Option<Reply>, ()> {
        tokio::time::timeout(wait, self.reply_untimed())
            .await
            .map_err(|_| ())
    }

    /// Takes lines from the buffer only once the whole reply is there, so a caller that gives up
    /// waiting (see [`Self::reply_within`]) loses nothing.
    async fn reply_untimed(&mut self) -> Option<Reply> {
        loop {
            let mut lines: Vec<String> = Vec::new();
            let mut at = 0;
            while let Some(pos) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[at..at + pos]).into_owned();
                at += pos + 2;
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    self.buf.drain(..at);
                    return Reply::from_lines(&lines);
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// EHLO; returns the reply (its text lists the extensions).
    pub async fn ehlo(&mut self) -> Reply {
        self.cmd("EHLO client.test").await.expect("EHLO reply")
    }

    /// True when the connection is closed by the server (read returns EOF or fails).
    pub async fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(REPLY_WAIT, self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
