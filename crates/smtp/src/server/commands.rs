//! Input handling of [`Session`]: line framing, command dispatch, SASL exchanges, DATA and BDAT.

use super::auth::{self, LOGIN_PASS_CHALLENGE, LOGIN_USER_CHALLENGE, SaslError};
use super::data::{DotReader, Sink};
use super::parse::{self, Body, Command, MailParams};
use super::{AUTH_LINE_MAX, AuthMechanism, Event, Pending, Session, State, Transaction};
use crate::reply::Reply;

/// Result of looking for one complete line in the buffer.
enum Line {
    Incomplete,
    TooLong,
    Complete(Vec<u8>),
}

fn code(code: u16, e: (u8, u16, u16), text: &str) -> Reply {
    Reply::with_code(code, e, text)
}

fn bad_sequence(text: &str) -> Reply {
    code(503, (5, 5, 1), text)
}

fn too_big() -> Reply {
    code(
        552,
        (5, 3, 4),
        "Message size exceeds fixed maximum message size",
    )
}

impl Session {
    /// Runs the input state machine until it has something to report.
    pub(super) fn step(&mut self) -> Event {
        loop {
            match self.state {
                State::Closed | State::AwaitTls => return Event::NeedMore,
                State::DiscardLine => {
                    if !self.discard_line() {
                        return Event::NeedMore;
                    }
                }
                State::Data(_) => return self.step_data(),
                State::Bdat { .. } => return self.step_bdat(),
                State::Command
                | State::AuthPlain
                | State::AuthLoginUser
                | State::AuthLoginPass { .. } => {
                    return match self.take_line() {
                        Line::Incomplete => Event::NeedMore,
                        Line::TooLong => self.error(code(500, (5, 5, 2), "Line too long")),
                        Line::Complete(line) => self.handle_line(line),
                    };
                }
            }
        }
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Skips input up to and including the next LF; false when it ran out of input first.
    fn discard_line(&mut self) -> bool {
        match self.unread().iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                self.state = State::Command;
                true
            }
            None => {
                self.pos = self.buf.len();
                false
            }
        }
    }

    /// The longest line allowed now. It depends only on the state and the first five bytes, so
    /// the too-long verdict is the same however the input was split (the limit is ≥ 16).
    fn line_limit(&self) -> usize {
        let base = self.cfg.max_command_line;
        let auth_line = match self.state {
            State::AuthPlain | State::AuthLoginUser | State::AuthLoginPass { .. } => true,
            _ => self
                .unread()
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"AUTH ")),
        };
        if auth_line {
            base.max(AUTH_LINE_MAX)
        } else {
            base
        }
    }

    fn take_line(&mut self) -> Line {
        let limit = self.line_limit();
        let rest = self.unread();
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i + 1 > limit => {
                self.pos += i + 1;
                self.state = State::Command;
                Line::TooLong
            }
            Some(i) => {
                let mut line = rest.get(..i).unwrap_or_default().to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.pos += i + 1;
                Line::Complete(line)
            }
            // Drop it now rather than buffer a line that can never be valid.
            None if rest.len() >= limit => {
                self.pos = self.buf.len();
                self.state = State::DiscardLine;
                Line::TooLong
            }
            None => Line::Incomplete,
        }
    }

    /// Counts a client error; past `max_errors` the session closes with `421 4.7.0`.
    pub(super) fn error(&mut self, reply: Reply) -> Event {
        self.errors = self.errors.saturating_add(1);
        if self.cfg.max_errors > 0 && self.errors >= self.cfg.max_errors {
            self.close();
            return Event::Close(code(421, (4, 7, 0), "Too many errors, closing connection"));
        }
        Event::Reply(reply)
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.buf = Vec::new();
        self.pos = 0;
    }

    fn decide(&mut self, pending: Pending, event: Event) -> Event {
        self.pending = Some(pending);
        event
    }

    fn handle_line(&mut self, line: Vec<u8>) -> Event {
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => self.sasl_step(line, None),
            State::AuthLoginUser => self.sasl_step(line, Some(None)),
            State::AuthLoginPass { user } => self.sasl_step(line, Some(Some(user))),
            _ => self.command_line(line),
        }
    }

    fn command_line(&mut self, line: Vec<u8>) -> Event {
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return self.error(code(501, (5, 5, 2), "Invalid character in command"));
        }
        let Ok(line) = String::from_utf8(line) else {
            return self.error(code(501, (5, 5, 2), "Invalid UTF-8 in command"));
        };
        let line = line.replace('\t', " ");
        match parse::parse_command(line.trim_end_matches(' ')) {
            Ok(cmd) => self.command(cmd),
            Err(reply) => self.error(reply),
        }
    }

    fn command(&mut self, cmd: Command) -> Event {
        match cmd {
            Command::Ehlo(name) => self.helo(name, true),
            Command::Helo(name) => self.helo(name, false),
            Command::Mail { address, params } => self.mail(address, params),
            Command::Rcpt { address } => self.rcpt(address),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.tx = None;
                Event::Reply(code(250, (2, 0, 0), "Ok"))
            }
            Command::Noop => Event::Reply(code(250, (2, 0, 0), "Ok")),
            Command::Quit => {
                self.close();
                let text = format!("{} closing connection", self.cfg.hostname);
                Event::Quit(Reply::with_code(221, (2, 0, 0), text))
            }
            Command::Vrfy => Event::Reply(code(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message",
            )),
            Command::Help => Event::Reply(code(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
            )),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
            Command::NotImplemented => self.error(code(502, (5, 5, 1), "Command not implemented")),
        }
    }

    fn helo(&mut self, name: String, extended: bool) -> Event {
        let pending = Pending::Helo {
            name: name.clone(),
            extended,
        };
        self.decide(pending, Event::Helo { name, extended })
    }

    fn mail(&mut self, address: String, params: MailParams) -> Event {
        if self.helo.is_none() {
            return self.error(bad_sequence("Send EHLO/HELO first"));
        }
        if self.tx.is_some() {
            return self.error(bad_sequence("Nested MAIL command"));
        }
        if params.smtputf8 && !self.cfg.smtputf8 {
            return self.error(code(555, (5, 5, 4), "SMTPUTF8 not supported"));
        }
        if !params.smtputf8 && !address.is_ascii() {
            return self.error(code(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8"));
        }
        let size = params
            .size
            .map(|s| usize::try_from(s).unwrap_or(usize::MAX));
        if size.is_some_and(|s| s > self.cfg.max_message_size) {
            return Event::Reply(too_big());
        }
        let pending = Pending::Mail {
            address: address.clone(),
            smtputf8: params.smtputf8,
        };
        let event = Event::MailFrom {
            address,
            size,
            body_8bit: params.body == Body::EightBitMime,
            smtputf8: params.smtputf8,
        };
        self.decide(pending, event)
    }

    fn rcpt(&mut self, address: String) -> Event {
        let Some(tx) = self.tx.as_ref() else {
            return self.error(bad_sequence("Need MAIL command"));
        };
        if tx.bdat_started {
            return self.error(bad_sequence("RCPT not allowed after BDAT"));
        }
        if !tx.smtputf8 && !address.is_ascii() {
            return self.error(code(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8"));
        }
        if tx.recipients.len() >= self.cfg.max_recipients {
            return Event::Reply(code(452, (4, 5, 3), "Too many recipients"));
        }
        let pending = Pending::Rcpt {
            address: address.clone(),
        };
        self.decide(pending, Event::RcptTo { address })
    }

    fn data(&mut self) -> Event {
        let Some(tx) = self.tx.as_mut() else {
            return self.error(bad_sequence("Need MAIL command"));
        };
        if tx.bdat_started {
            return self.error(bad_sequence("DATA not allowed after BDAT"));
        }
        if tx.recipients.is_empty() {
            // RFC 2920 §3.1: the pipelining client learns here that every RCPT failed.
            return Event::Reply(code(554, (5, 5, 1), "No valid recipients"));
        }
        tx.data.clear();
        tx.overflow = false;
        self.state = State::Data(DotReader::new(self.cfg.max_text_line));
        Event::Reply(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"))
    }

    fn step_data(&mut self) -> Event {
        let State::Data(reader) = &mut self.state else {
            return Event::NeedMore;
        };
        let tx = self.tx.get_or_insert_with(Transaction::default);
        let input = self.buf.get(self.pos..).unwrap_or_default();
        let mut sink = Sink {
            data: &mut tx.data,
            max: self.cfg.max_message_size,
            overflow: &mut tx.overflow,
        };
        match reader.scan(input, &mut sink) {
            None => {
                self.pos = self.buf.len();
                Event::NeedMore
            }
            Some(used) => {
                self.pos += used;
                let long_line = reader.long_line();
                self.state = State::Command;
                if long_line {
                    self.tx = None;
                    return Event::Reply(code(500, (5, 5, 2), "Line too long"));
                }
                self.finish_message()
            }
        }
    }

    /// End of DATA or of the last BDAT chunk: refuse an oversized message or ask the caller.
    fn finish_message(&mut self) -> Event {
        let Some(tx) = self.tx.as_mut() else {
            return self.error(bad_sequence("Need MAIL command"));
        };
        if tx.overflow {
            self.tx = None;
            return Event::Reply(too_big());
        }
        let event = Event::Message {
            sender: std::mem::take(&mut tx.sender),
            recipients: std::mem::take(&mut tx.recipients),
            data: std::mem::take(&mut tx.data),
        };
        self.decide(Pending::Message, event)
    }

    fn bdat(&mut self, size: u64, last: bool) -> Event {
        // The chunk follows the command whatever we answer, so it is always read (and dropped
        // when refused) to keep the stream in sync.
        let fail = if !self.cfg.chunking {
            Some(code(502, (5, 5, 1), "Command not implemented"))
        } else {
            match self.tx.as_mut() {
                None => Some(bad_sequence("Need MAIL command")),
                Some(tx) if tx.recipients.is_empty() => {
                    Some(code(554, (5, 5, 1), "No valid recipients"))
                }
                Some(tx) => {
                    if !tx.bdat_started {
                        tx.data.clear();
                        tx.overflow = false;
                        tx.bdat_started = true;
                    }
                    None
                }
            }
        };
        self.state = State::Bdat {
            remaining: size,
            size,
            last,
            fail,
        };
        self.step_bdat()
    }

    fn step_bdat(&mut self) -> Event {
        let State::Bdat {
            remaining, fail, ..
        } = &mut self.state
        else {
            return Event::NeedMore;
        };
        let input = self.buf.get(self.pos..).unwrap_or_default();
        let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
        if fail.is_none()
            && let Some(tx) = self.tx.as_mut()
        {
            let mut sink = Sink {
                data: &mut tx.data,
                max: self.cfg.max_message_size,
                overflow: &mut tx.overflow,
            };
            sink.push(input.get(..take).unwrap_or_default());
        }
        self.pos += take;
        *remaining -= take as u64;
        if *remaining > 0 {
            return Event::NeedMore;
        }
        let State::Bdat {
            size, last, fail, ..
        } = std::mem::replace(&mut self.state, State::Command)
        else {
            return Event::NeedMore;
        };
        self.finish_chunk(size, last, fail)
    }

    fn finish_chunk(&mut self, size: u64, last: bool, fail: Option<Reply>) -> Event {
        if let Some(reply) = fail {
            return if reply.code == 554 {
                Event::Reply(reply)
            } else {
                self.error(reply)
            };
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.error(bad_sequence("Need MAIL command"));
        };
        if tx.overflow && !last {
            // Answer early so the client can stop; the data of later chunks is dropped too.
            return Event::Reply(too_big());
        }
        if last {
            return self.finish_message();
        }
        Event::Reply(Reply::with_code(
            250,
            (2, 0, 0),
            format!("{size} bytes received"),
        ))
    }

    fn starttls(&mut self) -> Event {
        if !self.cfg.starttls {
            return self.error(code(502, (5, 5, 1), "Command not implemented"));
        }
        if self.tls {
            return self.error(bad_sequence("TLS already active"));
        }
        self.decide(Pending::StartTls, Event::StartTls)
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Event {
        if !self.cfg.auth {
            return self.error(code(502, (5, 5, 1), "Command not implemented"));
        }
        if !self.auth_offered() {
            return Event::Reply(code(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.auth_user.is_some() {
            return self.error(bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(bad_sequence("AUTH not permitted during a mail transaction"));
        }
        match (mechanism, initial) {
            ("PLAIN", None) => {
                self.state = State::AuthPlain;
                Event::Reply(Reply::new(334, None, ""))
            }
            // RFC 4954 §4: "=" is an empty initial response.
            ("PLAIN", Some(r)) if r == "=" => self.sasl_step(Vec::new(), None),
            ("PLAIN", Some(r)) => self.sasl_step(r.into_bytes(), None),
            ("LOGIN", None) => {
                self.state = State::AuthLoginUser;
                Event::Reply(Reply::new(334, None, LOGIN_USER_CHALLENGE))
            }
            ("LOGIN", Some(r)) => self.sasl_step(r.into_bytes(), Some(None)),
            _ => self.error(code(504, (5, 5, 4), "Unrecognized authentication type")),
        }
    }

    /// One SASL response. `login` is `None` for PLAIN, `Some(None)` for LOGIN's user name and
    /// `Some(Some(user))` for LOGIN's password.
    fn sasl_step(&mut self, response: Vec<u8>, login: Option<Option<String>>) -> Event {
        if response == b"*" {
            return Event::Reply(code(501, (5, 7, 0), "Authentication canceled"));
        }
        let result = match login {
            None => auth::decode_plain(&response).map(|(u, p)| (AuthMechanism::Plain, u, p)),
            Some(None) => {
                return match auth::decode_text(&response) {
                    Ok(user) => {
                        self.state = State::AuthLoginPass { user };
                        Event::Reply(Reply::new(334, None, LOGIN_PASS_CHALLENGE))
                    }
                    Err(e) => self.sasl_error(e),
                };
            }
            Some(Some(user)) => {
                auth::decode_text(&response).map(|p| (AuthMechanism::Login, user, p))
            }
        };
        match result {
            Ok((mechanism, username, password)) => {
                let pending = Pending::Auth {
                    username: username.clone(),
                };
                let event = Event::Auth {
                    mechanism,
                    username,
                    password,
                };
                self.decide(pending, event)
            }
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Event {
        self.error(Reply::with_code(
            501,
            (5, 5, 2),
            format!("Invalid authentication response: {e}"),
        ))
    }
}
