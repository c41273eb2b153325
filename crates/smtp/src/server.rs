//! The SMTP server session as a pure state machine: bytes in, events out, no I/O.
//!
//! # How a connection loop drives it
//!
//! ```text
//! let mut s = Session::new(cfg, false);
//! write(s.greeting());
//! loop {
//!     match s.next_event() {
//!         Event::NeedMore => { flush(); s.feed(&read()?) }          // the only point to read
//!         Event::Reply(r) => write(r),
//!         Event::Helo { .. } | Event::MailFrom { .. } | Event::RcptTo { .. } | Event::Auth { .. }
//!             => write(if policy_ok { s.accept() } else { s.reject(reply) }),
//!         Event::StartTls => { write(s.accept()); flush(); handshake()?; s.tls_established() }
//!         Event::Message { .. } => { spool_durably()?; write(s.accept_message(queued_reply)) }
//!         Event::Quit(r) | Event::Close(r) => { write(r); flush(); break }
//!     }
//! }
//! ```
//!
//! * Decision events (`Helo`, `MailFrom`, `RcptTo`, `Auth`, `StartTls`, `Message`) must be answered
//!   with [`Session::accept`], [`Session::reject`] or [`Session::accept_message`] before the next
//!   [`Session::next_event`]; an unanswered one is refused with `451 4.3.0` so the state stays
//!   consistent.
//! * Replies come out in command order, so PIPELINING (RFC 2920) only needs the loop to flush
//!   when it gets [`Event::NeedMore`]. Any split of the input yields the same events.
//! * Memory: after `next_event` returned `NeedMore`, the session holds at most one partial command
//!   line (≤ `max_command_line`, or 12 288 bytes for AUTH lines, RFC 4954 §4) plus the message
//!   being received (≤ `max_message_size`; the excess is read and dropped, then refused with
//!   `552 5.3.4`). Feed it one read at a time.
//! * Replies carry enhanced status codes (RFC 2034) except the greeting, the HELO/EHLO replies
//!   and the `334`/`354` intermediate replies, which RFC 2034 and RFC 3463 leave without one.
//! * After STARTTLS is accepted nothing more is parsed until [`Session::tls_established`], which
//!   drops whatever the client pipelined in clear text (RFC 3207 §4.2 command injection) and
//!   forgets EHLO, the transaction and any authentication.

mod auth;
mod commands;
mod data;
mod parse;

pub use data::dot_stuff;

use crate::reply::Reply;
use data::DotReader;

/// Longest AUTH command or SASL response line accepted (RFC 4954 §4).
pub const AUTH_LINE_MAX: usize = 12_288;

/// Listener settings that change what the session offers and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Our name in the greeting and EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as `SIZE`).
    pub max_message_size: usize,
    /// Most recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line including CRLF (RFC 5321 §4.5.3.1.4: 512). Values under 16 count as 16.
    pub max_command_line: usize,
    /// Longest DATA line including CRLF (RFC 5321 §4.5.3.1.6: 1000); 0 disables the check.
    pub max_text_line: usize,
    /// Bad commands tolerated; reaching it closes with `421 4.7.0`. 0 means no limit.
    pub max_errors: u32,
    /// Offer STARTTLS while the connection is not yet encrypted (needs a certificate).
    pub starttls: bool,
    /// Offer AUTH PLAIN LOGIN (needs a credential check in the caller).
    pub auth: bool,
    /// Offer and accept AUTH only on TLS connections.
    pub auth_requires_tls: bool,
    /// Offer CHUNKING (BDAT, RFC 3030).
    pub chunking: bool,
    /// Offer SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
}

impl Default for ServerConfig {
    /// RFC limits, 50 MiB messages, 100 recipients; STARTTLS and AUTH off because both need
    /// something from the caller (a certificate, a credential store).
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 512,
            max_text_line: 1000,
            max_errors: 10,
            starttls: false,
            auth: false,
            auth_requires_tls: true,
            chunking: true,
            smtputf8: true,
        }
    }
}

/// SASL mechanisms the session runs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// RFC 4616.
    Plain,
    /// The de-facto LOGIN mechanism (two base64 prompts).
    Login,
}

/// What the session wants the caller to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Read more bytes and [`Session::feed`] them (flush pending replies first).
    NeedMore,
    /// The session answered by itself: write this reply.
    Reply(Reply),
    /// Decision: HELO (`extended == false`) or EHLO. `accept` yields the greeting/capabilities.
    Helo { name: String, extended: bool },
    /// Decision: a new transaction. `address` is empty for the null sender `<>`.
    MailFrom {
        address: String,
        size: Option<usize>,
        body_8bit: bool,
        smtputf8: bool,
    },
    /// Decision: one more recipient (relay control belongs to the caller).
    RcptTo { address: String },
    /// Decision: credentials from a completed PLAIN or LOGIN exchange.
    Auth {
        mechanism: AuthMechanism,
        username: String,
        password: String,
    },
    /// Decision: `accept` gives the `220` to write before the TLS handshake.
    StartTls,
    /// Decision: a complete message (dot-unstuffed DATA, or all BDAT chunks).
    Message {
        sender: String,
        recipients: Vec<String>,
        data: Vec<u8>,
    },
    /// Write this `221` and close.
    Quit(Reply),
    /// Write this (`421 ...`) and close.
    Close(Reply),
}

/// A decision event waiting for the caller's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Helo { name: String, extended: bool },
    Mail { address: String, smtputf8: bool },
    Rcpt { address: String },
    Auth { username: String },
    StartTls,
    Message,
}

/// Where the input stream is.
#[derive(Debug, Clone)]
enum State {
    Command,
    /// Dropping the rest of an over-long line, up to its LF.
    DiscardLine,
    Data(DotReader),
    Bdat {
        remaining: u64,
        size: u64,
        last: bool,
        /// The reply to give once the chunk is consumed, when the chunk is refused anyway.
        fail: Option<Reply>,
    },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass {
        user: String,
    },
    /// STARTTLS accepted: nothing is parsed until the handshake is done.
    AwaitTls,
    Closed,
}

/// The current mail transaction (after an accepted MAIL FROM).
#[derive(Debug, Clone, Default)]
struct Transaction {
    sender: String,
    smtputf8: bool,
    recipients: Vec<String>,
    data: Vec<u8>,
    overflow: bool,
    bdat_started: bool,
}

/// One SMTP server conversation. See the module documentation for the driving loop.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: ServerConfig,
    tls: bool,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`; compacted on `feed` to avoid shifting per line.
    pos: usize,
    state: State,
    pending: Option<Pending>,
    helo: Option<String>,
    auth_user: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
}

impl Session {
    /// A new session; `tls_active` is true for implicit-TLS listeners (port 465).
    pub fn new(mut cfg: ServerConfig, tls_active: bool) -> Self {
        cfg.max_command_line = cfg.max_command_line.max(16);
        Self {
            cfg,
            tls: tls_active,
            buf: Vec::new(),
            pos: 0,
            state: State::Command,
            pending: None,
            helo: None,
            auth_user: None,
            tx: None,
            errors: 0,
        }
    }

    /// The `220` banner to send when the connection opens.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, None, format!("{} ESMTP cartero", self.cfg.hostname))
    }

    /// Buffers bytes read from the client. Ignored once the session is closed.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos.min(self.buf.len()));
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next thing to do; call until it returns [`Event::NeedMore`].
    pub fn next_event(&mut self) -> Event {
        if self.pending.is_some() {
            let reply = Reply::with_code(451, (4, 3, 0), "Internal error: command left unanswered");
            return Event::Reply(self.reject(reply));
        }
        self.step()
    }

    /// Accepts the pending decision with the standard positive reply.
    ///
    /// Without a pending decision it changes nothing and returns `503 5.5.1` (a caller bug).
    pub fn accept(&mut self) -> Reply {
        let Some(pending) = self.pending.take() else {
            return no_pending();
        };
        match pending {
            Pending::Helo { name, extended } => {
                self.helo = Some(name);
                self.tx = None;
                if extended {
                    Reply::new(250, None, self.ehlo_lines())
                } else {
                    Reply::new(250, None, self.cfg.hostname.clone())
                }
            }
            Pending::Mail { address, smtputf8 } => {
                self.tx = Some(Transaction {
                    sender: address,
                    smtputf8,
                    ..Transaction::default()
                });
                Reply::with_code(250, (2, 1, 0), "Sender ok")
            }
            Pending::Rcpt { address } => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.recipients.push(address);
                }
                Reply::with_code(250, (2, 1, 5), "Recipient ok")
            }
            Pending::Auth { username } => {
                self.auth_user = Some(username);
                Reply::with_code(235, (2, 7, 0), "Authentication successful")
            }
            Pending::StartTls => {
                self.state = State::AwaitTls;
                Reply::with_code(220, (2, 0, 0), "Ready to start TLS")
            }
            Pending::Message => {
                self.tx = None;
                Reply::with_code(250, (2, 0, 0), "Ok: queued")
            }
        }
    }

    /// Refuses the pending decision with the caller's `reply` (returned unchanged). A refused
    /// message ends its transaction; other refusals leave the state as before the command.
    pub fn reject(&mut self, reply: Reply) -> Reply {
        match self.pending.take() {
            Some(Pending::Message) => self.tx = None,
            Some(_) => {}
            None => return no_pending(),
        }
        reply
    }

    /// Accepts the pending [`Event::Message`] with the caller's reply (e.g. with the queue id).
    /// For any other pending decision it does nothing and returns `503 5.5.1`.
    pub fn accept_message(&mut self, reply: Reply) -> Reply {
        if self.pending != Some(Pending::Message) {
            return no_pending();
        }
        self.pending = None;
        self.tx = None;
        reply
    }

    /// The TLS handshake after STARTTLS succeeded: forget everything learnt in clear text.
    pub fn tls_established(&mut self) {
        self.tls = true;
        self.buf.clear();
        self.pos = 0;
        self.helo = None;
        self.auth_user = None;
        self.tx = None;
        self.pending = None;
        self.state = State::Command;
    }

    /// True once TLS is active (implicit TLS or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True after an accepted AUTH.
    pub fn is_authenticated(&self) -> bool {
        self.auth_user.is_some()
    }

    /// The authenticated user name, if any.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// The accepted HELO/EHLO name, if any.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True after QUIT or a `421` close; later input is ignored.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Input bytes buffered but not yet consumed (bounded, see the module documentation).
    pub fn buffered_input_len(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True between the 354 (or a BDAT command) and the end of the message data: the caller
    /// applies its data timeout rather than its command timeout.
    pub fn is_receiving_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    /// Changes the largest accepted message from the next transaction on (e.g. a client that
    /// authenticated may send more than an anonymous one). SIZE in a later EHLO follows.
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.cfg.max_message_size = bytes;
    }

    /// Bytes of the message being received (never above `max_message_size`).
    pub fn message_buffer_len(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.data.len())
    }

    fn ehlo_lines(&self) -> String {
        let mut lines = vec![
            self.cfg.hostname.clone(),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.cfg.max_message_size),
            "8BITMIME".to_string(),
        ];
        if self.cfg.smtputf8 {
            lines.push("SMTPUTF8".to_string());
        }
        lines.push("ENHANCEDSTATUSCODES".to_string());
        if self.cfg.chunking {
            lines.push("CHUNKING".to_string());
        }
        if self.cfg.starttls && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.join("\n")
    }

    fn auth_offered(&self) -> bool {
        self.cfg.auth && (self.tls || !self.cfg.auth_requires_tls)
    }
}

fn no_pending() -> Reply {
    Reply::with_code(503, (5, 5, 1), "No command awaiting a decision")
}
