//! A scripted SMTP sink: a tokio accept loop around the sans-I/O `cartero_smtp::server::Session`,
//! answering each RCPT from rules, recording every message and counting connections.

use cartero_smtp::Reply;
use cartero_smtp::server::{Event, ServerConfig, Session};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// How the sink answers RCPT TO.
#[derive(Debug, Clone)]
pub enum Rules {
    /// By local-part prefix: `defer` → 451 4.7.1 greylisted, `slow` → 450 4.2.1, `reject` → 550 5.1.1,
    /// `full` → 452 4.2.2, anything else → 250.
    ByPrefix,
    /// Every recipient gets 250.
    AcceptAll,
    /// Every recipient gets this reply.
    Always(Reply),
}

impl Rules {
    /// The refusal for `rcpt`, or `None` to accept it.
    pub fn verdict(&self, rcpt: &str) -> Option<Reply> {
        match self {
            Rules::AcceptAll => None,
            Rules::Always(r) if r.is_positive() => None,
            Rules::Always(r) => Some(r.clone()),
            Rules::ByPrefix => {
                let local = rcpt.split('@').next().unwrap_or("").to_ascii_lowercase();
                if local.starts_with("defer") {
                    Some(Reply::with_code(
                        451,
                        (4, 7, 1),
                        "Greylisted, please retry later",
                    ))
                } else if local.starts_with("slow") {
                    Some(Reply::with_code(
                        450,
                        (4, 2, 1),
                        "Mailbox temporarily unavailable",
                    ))
                } else if local.starts_with("reject") {
                    Some(Reply::with_code(550, (5, 1, 1), "No such user here"))
                } else if local.starts_with("full") {
                    Some(Reply::with_code(452, (4, 2, 2), "Mailbox full"))
                } else {
                    None
                }
            }
        }
    }
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct SinkMessage {
    pub sender: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
    /// Which connection (1-based, in accept order) carried it.
    pub connection: usize,
    /// The client's address as the sink saw it (the MTA's egress source).
    pub peer: std::net::SocketAddr,
}

impl SinkMessage {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug)]
struct State {
    rules: Mutex<Rules>,
    messages: Mutex<Vec<SinkMessage>>,
    total: AtomicUsize,
    current: AtomicUsize,
    max_concurrent: AtomicUsize,
    banner_421: AtomicBool,
    changed: Notify,
}

/// The running sink. Stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
    conns: Arc<Mutex<Conns>>,
}

/// The connections being served, and whether the sink is in an outage. One lock for both, so a
/// connection is either registered before an outage starts (and cut by it) or refused by it.
#[derive(Default)]
struct Conns {
    down: bool,
    tasks: Vec<AbortHandle>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.conns.lock().tasks.drain(..) {
            t.abort();
        }
    }
}

/// Counts a connection as open until released (explicitly before the final reply, so that a
/// client reacting to that reply never sees two connections counted at once).
struct Open<'a> {
    state: &'a State,
    released: bool,
}

impl Open<'_> {
    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.state.current.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl Sink {
    /// Listens on 127.0.0.1 on a free port with [`Rules::ByPrefix`].
    pub async fn start() -> Sink {
        let state = Arc::new(State {
            rules: Mutex::new(Rules::ByPrefix),
            messages: Mutex::new(Vec::new()),
            total: AtomicUsize::new(0),
            current: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            banner_421: AtomicBool::new(false),
            changed: Notify::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Conns::default()));
        let accept = serve(listener, state.clone(), conns.clone());
        Sink {
            addr,
            state,
            accept,
            conns,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_rules(&self, rules: Rules) {
        *self.state.rules.lock() = rules;
    }

    /// When on, every new connection gets `421 4.3.2` as its banner and is closed.
    pub fn set_banner_421(&self, on: bool) {
        self.state.banner_421.store(on, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<SinkMessage> {
        self.state.messages.lock().clone()
    }

    /// Connections accepted so far.
    pub fn total_connections(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Most connections open at the same time so far.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_concurrent.load(Ordering::SeqCst)
    }

    /// Starts an outage: every open connection is cut and new ones are closed as soon as they are
    /// accepted, before any banner (a failure of the connection, as a refused one would be). The
    /// listener stays open, so the port stays the sink's: no other test can take it meanwhile.
    /// Connections refused this way are not counted.
    pub fn stop(&self) {
        let mut conns = self.conns.lock();
        conns.down = true;
        for t in conns.tasks.drain(..) {
            t.abort();
        }
    }

    /// Ends the outage, keeping rules, records and counters.
    pub fn restart(&self) {
        self.conns.lock().down = false;
    }

    /// Waits until the sink holds at least `n` messages; panics after `limit`.
    pub async fn wait_messages(&self, n: usize, limit: Duration) -> Vec<SinkMessage> {
        let wait = async {
            loop {
                let notified = self.state.changed.notified();
                if self.state.messages.lock().len() >= n {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            panic!(
                "sink got {} messages, wanted {n}",
                self.state.messages.lock().len()
            );
        }
        self.messages()
    }
}

/// Accepts connections until aborted, serving them unless the sink is in an outage.
fn serve(listener: TcpListener, state: Arc<State>, conns: Arc<Mutex<Conns>>) -> AbortHandle {
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let mut c = conns.lock();
            if c.down {
                drop(stream);
                continue;
            }
            let id = state.total.fetch_add(1, Ordering::SeqCst) + 1;
            let now = state.current.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_concurrent.fetch_max(now, Ordering::SeqCst);
            let st = state.clone();
            let h = tokio::spawn(async move { handle(&st, stream, id, peer).await });
            c.tasks.retain(|h| !h.is_finished());
            c.tasks.push(h.abort_handle());
        }
    });
    accept.abort_handle()
}

async fn handle(state: &State, mut stream: TcpStream, id: usize, peer: std::net::SocketAddr) {
    let mut open = Open {
        state,
        released: false,
    };
    if state.banner_421.load(Ordering::SeqCst) {
        open.release();
        let r = Reply::with_code(421, (4, 3, 2), "Service not available, closing");
        let _ = stream.write_all(&r.to_wire()).await;
        return;
    }
    let cfg = ServerConfig {
        hostname: "sink.test".into(),
        ..ServerConfig::default()
    };
    let mut session = Session::new(cfg, false);
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let reply = match session.next_event() {
            Event::NeedMore => {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => session.feed(&buf[..n]),
                }
                continue;
            }
            Event::Reply(r) => r,
            Event::Helo { .. } | Event::MailFrom { .. } | Event::Auth { .. } => session.accept(),
            Event::StartTls => session.reject(Reply::with_code(454, (4, 7, 0), "No TLS here")),
            Event::RcptTo { address } => {
                let verdict = state.rules.lock().verdict(&address);
                match verdict {
                    Some(r) => session.reject(r),
                    None => session.accept(),
                }
            }
            Event::Message {
                sender,
                recipients,
                data,
            } => {
                state.messages.lock().push(SinkMessage {
                    sender,
                    recipients,
                    data,
                    connection: id,
                    peer,
                });
                state.changed.notify_waiters();
                session.accept_message(Reply::with_code(250, (2, 0, 0), "Ok: stored"))
            }
            Event::Quit(r) | Event::Close(r) => {
                open.release();
                r.write_to(&mut out);
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        reply.write_to(&mut out);
    }
}
