//! One provider's listener and the per-connection SMTP loop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cartero_smtp::reply::Reply;
use cartero_smtp::server::{Event, ServerConfig, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::policy::Policy;

/// A client silent this long is dropped, so idle sockets cannot pile up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    policy: Arc<Policy>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            res = listener.accept() => res,
        };
        match accepted {
            Ok((stream, peer)) => {
                let policy = Arc::clone(&policy);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let ip = peer.ip().to_canonical();
                    if let Err(e) = handle(stream, ip, policy, stop).await {
                        tracing::debug!(%peer, error = %e, "simulated connection ended");
                    }
                });
            }
            Err(e) => {
                // Usually EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn pause(delay: Option<Duration>) {
    if let Some(d) = delay.filter(|d| !d.is_zero()) {
        tokio::time::sleep(d).await;
    }
}

async fn handle(
    mut stream: TcpStream,
    ip: IpAddr,
    policy: Arc<Policy>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let cfg = policy.config();
    pause(cfg.delays.banner).await;
    let _slot = match policy.connect(ip) {
        Ok(slot) => slot,
        Err(reply) => {
            stream.write_all(&reply.to_wire()).await?;
            return stream.shutdown().await;
        }
    };
    let server_cfg = ServerConfig {
        hostname: cfg.hostname.clone(),
        chunking: false,
        ..ServerConfig::default()
    };
    let mut session = Session::new(server_cfg, false);
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; 16 * 1024];
    let mut sender = String::new();
    loop {
        let (reply, close) = match session.next_event() {
            Event::NeedMore => {
                stream.write_all(&out).await?;
                out.clear();
                let n = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                    r = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)) => match r {
                        Ok(r) => r?,
                        Err(_) => return Ok(()),
                    },
                };
                if n == 0 {
                    return Ok(());
                }
                session.feed(buf.get(..n).unwrap_or_default());
                continue;
            }
            event => answer(&mut session, event, &policy, ip, &mut sender).await,
        };
        reply.write_to(&mut out);
        if close {
            stream.write_all(&out).await?;
            return stream.shutdown().await;
        }
    }
}

/// The reply to a non-`NeedMore` event, and whether to close after it.
async fn answer(
    session: &mut Session,
    event: Event,
    policy: &Policy,
    ip: IpAddr,
    sender: &mut String,
) -> (Reply, bool) {
    let delays = policy.config().delays;
    match event {
        Event::NeedMore => (Reply::with_code(451, (4, 3, 0), "Internal error"), true),
        Event::Reply(r) => (r, false),
        Event::Helo { .. } => {
            pause(delays.helo).await;
            (session.accept(), false)
        }
        Event::MailFrom { address, .. } => {
            pause(delays.mail).await;
            match policy.mail(ip) {
                Ok(()) => {
                    *sender = address;
                    (session.accept(), false)
                }
                Err(r) => decide_close(session.reject(r)),
            }
        }
        Event::RcptTo { address } => {
            pause(delays.rcpt).await;
            match policy.rcpt(ip, sender, &address) {
                Ok(()) => (session.accept(), false),
                Err(r) => (session.reject(r), false),
            }
        }
        Event::Auth { .. } | Event::StartTls => {
            let r = Reply::with_code(502, (5, 5, 1), "Command not implemented");
            (session.reject(r), false)
        }
        Event::Message { .. } => {
            pause(delays.data).await;
            policy.accepted(ip);
            let r = Reply::with_code(250, (2, 0, 0), "OK queued by simulator");
            (session.accept_message(r), false)
        }
        Event::Quit(r) | Event::Close(r) => (r, true),
    }
}

/// Blocks (5xx at MAIL) end the session as real providers do; rate refusals keep it open.
fn decide_close(reply: Reply) -> (Reply, bool) {
    let close = reply.code == 554 || reply.code == 421;
    (reply, close)
}
