//! A scripted SMTP conversation against `Session` with a simple policy, shared by the server tests.
#![allow(dead_code)]

use cartero_smtp::Reply;
use cartero_smtp::server::{Event, ServerConfig, Session};

/// A received message as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub sender: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

/// Drives a session like a connection loop would, answering decisions with a fixed policy:
/// recipients in `reject_rcpt` get 550, the password `secret` is the only valid one, messages are
/// queued with increasing ids.
pub struct Harness {
    pub session: Session,
    pub replies: Vec<String>,
    pub messages: Vec<Received>,
    pub auths: Vec<(String, String)>,
    pub reject_rcpt: Vec<String>,
    pub reject_helo: bool,
    pub closed: bool,
    /// Filled by `send`: the largest buffered input seen after a drain.
    pub max_buffered: usize,
}

pub fn cfg() -> ServerConfig {
    ServerConfig {
        hostname: "mx.test".into(),
        max_message_size: 10_000,
        max_recipients: 3,
        starttls: true,
        auth: true,
        ..ServerConfig::default()
    }
}

impl Harness {
    pub fn new(cfg: ServerConfig, tls: bool) -> Self {
        Self {
            session: Session::new(cfg, tls),
            replies: Vec::new(),
            messages: Vec::new(),
            auths: Vec::new(),
            reject_rcpt: Vec::new(),
            reject_helo: false,
            closed: false,
            max_buffered: 0,
        }
    }

    /// Default config, plain text, already past EHLO.
    pub fn ready() -> Self {
        let mut h = Self::new(cfg(), false);
        h.send(b"EHLO client.test\r\n");
        h.replies.clear();
        h
    }

    /// Feeds `bytes` as one read and drains the events; returns the replies written for it.
    pub fn send(&mut self, bytes: &[u8]) -> Vec<String> {
        let before = self.replies.len();
        self.session.feed(bytes);
        let mut tls_handshake = false;
        // Bounded: each event consumes input or answers a decision.
        for _ in 0..1_000_000 {
            let reply = match self.session.next_event() {
                Event::NeedMore => break,
                Event::Reply(r) => r,
                Event::Helo { .. } if self.reject_helo => {
                    self.session
                        .reject(Reply::with_code(550, (5, 7, 1), "Go away"))
                }
                Event::Helo { .. } | Event::MailFrom { .. } => self.session.accept(),
                Event::RcptTo { address } if self.reject_rcpt.contains(&address) => self
                    .session
                    .reject(Reply::with_code(550, (5, 1, 1), "No such user")),
                Event::RcptTo { .. } => self.session.accept(),
                Event::Auth {
                    username, password, ..
                } => {
                    let ok = password == "secret";
                    self.auths.push((username, password));
                    if ok {
                        self.session.accept()
                    } else {
                        let r =
                            Reply::with_code(535, (5, 7, 8), "Authentication credentials invalid");
                        self.session.reject(r)
                    }
                }
                Event::StartTls => {
                    tls_handshake = true;
                    self.session.accept()
                }
                Event::Message {
                    sender,
                    recipients,
                    data,
                } => {
                    self.messages.push(Received {
                        sender,
                        recipients,
                        data,
                    });
                    let id = self.messages.len();
                    let r = Reply::with_code(250, (2, 0, 0), format!("Ok: queued as {id}"));
                    self.session.accept_message(r)
                }
                Event::Quit(r) | Event::Close(r) => {
                    self.closed = true;
                    self.replies.push(r.to_string());
                    break;
                }
            };
            self.replies.push(reply.to_string());
        }
        if tls_handshake {
            self.session.tls_established();
        }
        let buffered = self.session.buffered_input_len();
        self.max_buffered = self.max_buffered.max(buffered);
        self.replies[before..].to_vec()
    }

    /// Sends `bytes` and returns the reply codes only.
    pub fn codes(&mut self, bytes: &[u8]) -> Vec<u16> {
        self.send(bytes)
            .iter()
            .map(|r| r.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0))
            .collect()
    }
}
