//! A small SMTP receiver for tests that need control a real peer does not give: a delay before
//! the reply to the final dot (a slow receiver), scripted replies to RCPT and to the final dot
//! (451, 550 5.1.1...), a signal when a message's data has arrived but is not yet acknowledged,
//! and a hold that stalls those replies with a way to wait until every arrived message is either
//! acknowledged or stalled.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A message the sink acknowledged with 250 (the reply was written successfully).
#[derive(Debug, Clone)]
pub struct SinkMsg {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// Message content after dot-unstuffing, CRLF line ends, without the final dot line.
    pub data: Vec<u8>,
}

impl SinkMsg {
    /// The value of the first `Message-ID` header, if any.
    pub fn message_id(&self) -> Option<String> {
        self.header("message-id")
    }

    /// The value of the first header field called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        let mut found: Option<String> = None;
        for line in text.split("\r\n").take_while(|l| !l.is_empty()) {
            let folded = line.starts_with([' ', '\t']);
            match (&mut found, folded) {
                (Some(value), true) => value.push_str(line),
                (Some(_), false) => break,
                (None, false) => {
                    found = line.split_once(':').and_then(|(n, v)| {
                        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    });
                }
                (None, true) => {}
            }
        }
        found
    }
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<SinkMsg>>,
    changed: Condvar,
    /// Messages whose data arrived (counted before the delayed reply).
    data_seen: AtomicUsize,
    dot_delay_ms: AtomicUsize,
    /// Replaces `250` as the answer to every RCPT while set.
    rcpt_reply: Mutex<Option<String>>,
    /// Replaces `250` as the answer to every final dot while set; such messages are not
    /// recorded in `accepted`.
    dot_reply: Mutex<Option<String>>,
    /// Sessions whose data arrived and that are neither recorded in `accepted` (or failed to
    /// reply) nor stalled by the hold. Changed under the `accepted` lock or followed by taking
    /// it, so waiters on `changed` see every decrease.
    busy: AtomicUsize,
    /// While on, replies to the final dot wait (a receiver that stalls).
    hold: Mutex<Hold>,
    released: Condvar,
}

#[derive(Default)]
struct Hold {
    on: bool,
    /// Also held: every message whose data arrives as the n-th (0-based) or later.
    from: Option<usize>,
    /// Sessions waiting for the hold to end (not counted in `busy`).
    stalled: usize,
    /// Bumped by every release; a stalled session waits for a change, so a release followed
    /// quickly by a new hold still lets it go, and it is counted as busy again from the release.
    generation: u64,
}

/// The running sink; its threads live until the test process ends.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &st);
                });
            }
        });
        Sink { addr, state }
    }

    /// Delay before answering the final dot of each message.
    pub fn set_dot_delay(&self, d: Duration) {
        let ms = usize::try_from(d.as_millis()).unwrap();
        self.state.dot_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// While held, every reply to a final dot waits until `set_hold(false)`, which also ends
    /// [`Sink::hold_from`].
    pub fn set_hold(&self, on: bool) {
        let mut h = self.state.hold.lock().unwrap();
        if !on {
            self.state.busy.fetch_add(h.stalled, Ordering::SeqCst);
            h.stalled = 0;
            h.generation += 1;
            h.from = None;
        }
        h.on = on;
        drop(h);
        self.state.released.notify_all();
    }

    /// Holds the reply to the `n`-th message whose data arrives (counting from 0, over the sink's
    /// lifetime) and to every later one, until `set_hold(false)`: a receiver that stops
    /// acknowledging at a known point, however fast the sender is.
    pub fn hold_from(&self, n: usize) {
        self.state.hold.lock().unwrap().from = Some(n);
    }

    /// While on, every RCPT gets `451 4.3.0` (a transient failure for the client).
    pub fn set_temp_fail(&self, on: bool) {
        self.set_rcpt_reply(on.then_some("451 4.3.0 try again later"));
    }

    /// While set, every RCPT is answered with this reply line (without CRLF) instead of `250`.
    pub fn set_rcpt_reply(&self, reply: Option<&str>) {
        *self.state.rcpt_reply.lock().unwrap() = reply.map(str::to_string);
    }

    /// While set, every final dot is answered with this reply line (after the hold and the
    /// delay) instead of `250`, and the message is not recorded as accepted.
    pub fn set_dot_reply(&self, reply: Option<&str>) {
        *self.state.dot_reply.lock().unwrap() = reply.map(str::to_string);
    }

    pub fn accepted(&self) -> Vec<SinkMsg> {
        self.state.accepted.lock().unwrap().clone()
    }

    pub fn data_seen(&self) -> usize {
        self.state.data_seen.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were acknowledged; returns whether that happened.
    pub fn wait_accepted(&self, n: usize, limit: Duration) -> bool {
        self.wait_for(limit, |v| v.len() >= n)
    }

    /// Waits until `check` holds over the accepted messages.
    pub fn wait_for(&self, limit: Duration, check: impl Fn(&[SinkMsg]) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut guard = self.state.accepted.lock().unwrap();
        loop {
            if check(&guard) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self.state.changed.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits until every message whose data arrived was either acknowledged (and is in
    /// [`Sink::accepted`]) or is stalled by the hold. While held, `accepted` cannot grow after
    /// this returns true.
    pub fn wait_quiet(&self, limit: Duration) -> bool {
        let busy = &self.state.busy;
        self.wait_for(limit, |_| busy.load(Ordering::SeqCst) == 0)
    }

    /// Waits until at least `n` messages' data arrived (acknowledged or not).
    pub fn wait_data_seen(&self, n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut guard = self.state.accepted.lock().unwrap();
        loop {
            if self.data_seen() >= n {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self.state.changed.wait_timeout(guard, left).unwrap().0;
        }
    }
}

fn session(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = conn.try_clone()?;
    let mut input = BufReader::new(conn);
    out.write_all(b"220 sink.test ESMTP test sink\r\n")?;
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let cmd = text.trim_end();
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let rcpt_reply = st.rcpt_reply.lock().unwrap().clone();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "MAIL" => {
                from = angle(cmd);
                rcpts.clear();
                b"250 2.1.0 ok\r\n"
            }
            "RCPT" if rcpt_reply.is_some() => {
                let line = rcpt_reply.unwrap_or_default();
                out.write_all(format!("{line}\r\n").as_bytes())?;
                continue;
            }
            "RCPT" => {
                rcpts.push(angle(cmd));
                b"250 2.1.5 ok\r\n"
            }
            "DATA" if rcpts.is_empty() => b"554 5.5.1 no valid recipients\r\n",
            "DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut input)?;
                let index = data_arrived(st);
                wait_released(st, index);
                let delay = st.dot_delay_ms.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay as u64));
                let scripted = st.dot_reply.lock().unwrap().clone();
                let line = scripted.as_deref().unwrap_or("250 2.0.0 accepted");
                let written = out.write_all(format!("{line}\r\n").as_bytes());
                let msg = SinkMsg {
                    mail_from: std::mem::take(&mut from),
                    rcpts: std::mem::take(&mut rcpts),
                    data,
                };
                let mut accepted = st.accepted.lock().unwrap();
                if written.is_ok() && scripted.is_none() {
                    accepted.push(msg);
                }
                st.busy.fetch_sub(1, Ordering::SeqCst);
                drop(accepted);
                st.changed.notify_all();
                written?;
                continue;
            }
            "RSET" => {
                from.clear();
                rcpts.clear();
                b"250 2.0.0 ok\r\n"
            }
            "QUIT" => {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        out.write_all(reply)?;
    }
}

/// Counts a message whose data arrived; returns how many arrived before it.
fn data_arrived(st: &State) -> usize {
    st.busy.fetch_add(1, Ordering::SeqCst);
    let index = st.data_seen.fetch_add(1, Ordering::SeqCst);
    notify_changed(st);
    index
}

fn notify_changed(st: &State) {
    // Take the lock so a waiter cannot miss the notification between its check and its wait.
    drop(st.accepted.lock().unwrap());
    st.changed.notify_all();
}

fn wait_released(st: &State, index: usize) {
    let mut h = st.hold.lock().unwrap();
    if !h.on && h.from.is_none_or(|n| index < n) {
        return;
    }
    let generation = h.generation;
    h.stalled += 1;
    st.busy.fetch_sub(1, Ordering::SeqCst);
    // Lock order is hold, then accepted; nothing takes them the other way round.
    notify_changed(st);
    let end = Instant::now() + Duration::from_secs(120);
    while h.generation == generation && Instant::now() < end {
        h = st
            .released
            .wait_timeout(h, Duration::from_secs(1))
            .unwrap()
            .0;
    }
    if h.generation == generation {
        // Gave up waiting: the release did not count this session as busy again, so do it here.
        h.stalled -= 1;
        st.busy.fetch_add(1, Ordering::SeqCst);
    }
}

fn angle(cmd: &str) -> String {
    let start = cmd.find('<').map(|i| i + 1).unwrap_or(cmd.len());
    let end = cmd[start..].find('>').map(|i| start + i).unwrap_or(start);
    cmd[start..end].to_string()
}

fn read_data(input: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let body = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(body);
    }
}
