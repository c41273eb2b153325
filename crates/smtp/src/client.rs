//! Outbound SMTP client logic without I/O: a bounded incremental reply reader, EHLO capabilities,
//! the transaction state machine (RFC 5321, PIPELINING per RFC 2920, CHUNKING per RFC 3030) and
//! dot-stuffing. [`crate::io`] drives these over tokio.
//!
//! Body transfer choice, kept deliberately simple: `DATA` is used unless the body has 8-bit bytes,
//! the server does not offer 8BITMIME and it does offer CHUNKING, in which case `BDAT n LAST`
//! carries the body unchanged. An 8-bit body to a server offering neither is sent with `DATA`
//! as-is (what deployed MTAs do rather than bounce it).

use std::collections::VecDeque;
use std::fmt;

use crate::reply::Reply;

/// Longest reply line accepted, CRLF excluded. RFC 5321 allows 512; real servers exceed it.
pub const MAX_REPLY_LINE: usize = 4096;
/// Longest complete (multi-line) reply accepted, counting CRLFs.
pub const MAX_REPLY_LEN: usize = 64 * 1024;

/// Why the reply stream from the server could not be parsed. The reader stays failed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply longer than {MAX_REPLY_LEN} bytes")]
    ReplyTooLong,
    #[error("malformed reply line {line:?}")]
    Malformed { line: String },
}

/// Incremental reader of server replies: feed it bytes as they arrive, take complete replies out.
/// Memory is bounded by [`MAX_REPLY_LEN`] plus the replies already complete and not yet taken.
#[derive(Debug, Default)]
pub struct ReplyReader {
    line: Vec<u8>,
    lines: Vec<String>,
    reply_len: usize,
    ready: VecDeque<Reply>,
    failed: Option<ReplyError>,
}

impl ReplyReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `input`. Replies completed before an error stay available from [`Self::next_reply`].
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while !input.is_empty() {
            let newline = input.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match newline {
                Some(i) => {
                    let (chunk, rest) = input.split_at(i);
                    (chunk, rest.get(1..).unwrap_or_default())
                }
                None => (input, &[][..]),
            };
            if self.line.len() + chunk.len() > MAX_REPLY_LINE {
                return Err(self.fail(ReplyError::LineTooLong));
            }
            self.line.extend_from_slice(chunk);
            input = rest;
            if newline.is_some() {
                self.end_line()?;
            }
        }
        Ok(())
    }

    /// The next complete reply, in arrival order.
    pub fn next_reply(&mut self) -> Option<Reply> {
        self.ready.pop_front()
    }

    /// True when nothing is buffered: no partial line, no partial reply, no reply waiting.
    /// After `220` to STARTTLS anything buffered would be plaintext injected before TLS.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty() && self.lines.is_empty() && self.ready.is_empty()
    }

    fn fail(&mut self, e: ReplyError) -> ReplyError {
        self.failed = Some(e.clone());
        e
    }

    fn end_line(&mut self) -> Result<(), ReplyError> {
        let raw = std::mem::take(&mut self.line);
        let raw = raw.strip_suffix(b"\r").unwrap_or(&raw);
        self.reply_len += raw.len() + 2;
        if self.reply_len > MAX_REPLY_LEN {
            return Err(self.fail(ReplyError::ReplyTooLong));
        }
        let digits = raw
            .get(..3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        let last = match raw.get(3) {
            None => true,
            Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(self.malformed(raw)),
        };
        if !digits {
            return Err(self.malformed(raw));
        }
        self.lines.push(String::from_utf8_lossy(raw).into_owned());
        if last {
            let lines = std::mem::take(&mut self.lines);
            self.reply_len = 0;
            match Reply::from_lines(&lines) {
                Some(reply) => self.ready.push_back(reply),
                None => {
                    let joined = lines.join("\\n");
                    return Err(self.malformed(joined.as_bytes()));
                }
            }
        }
        Ok(())
    }

    fn malformed(&mut self, raw: &[u8]) -> ReplyError {
        let line: String = String::from_utf8_lossy(raw).chars().take(120).collect();
        self.fail(ReplyError::Malformed { line })
    }
}

/// What the server offered in its EHLO reply (all false after a HELO fallback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The session was opened with EHLO (not HELO).
    pub esmtp: bool,
    pub pipelining: bool,
    /// SIZE was advertised (so `SIZE=` may be given on MAIL FROM).
    pub size_advertised: bool,
    /// The advertised fixed maximum message size; `None` when absent or 0 (no fixed limit).
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub chunking: bool,
    pub enhanced_status_codes: bool,
    /// AUTH mechanisms, upper-cased, without duplicates.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the extension lines (all lines but the greeting) of a positive EHLO reply.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self {
            esmtp: true,
            ..Self::default()
        };
        for line in reply.text.split('\n').skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(first) = words.next() else { continue };
            // Old servers announce `AUTH=LOGIN PLAIN`.
            let (keyword, inline_param) = match first.split_once('=') {
                Some((k, p)) => (k, Some(p)),
                None => (first, None),
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => {
                    caps.size_advertised = true;
                    caps.size = words
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|n| *n > 0);
                }
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "CHUNKING" => caps.chunking = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => {
                    for mech in inline_param.into_iter().chain(words) {
                        let mech = mech.to_ascii_uppercase();
                        if !mech.is_empty() && !caps.auth.contains(&mech) {
                            caps.auth.push(mech);
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

/// The protocol step in progress, for per-phase timeouts, errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Connect,
    Banner,
    Ehlo,
    Helo,
    /// The STARTTLS command and the TLS handshake.
    StartTls,
    Mail,
    Rcpt,
    /// The `DATA` command (waiting for 354) or the `BDAT` command line.
    Data,
    /// The body and the final reply after it.
    DataEnd,
    Rset,
    Quit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Phase::Connect => "connect",
            Phase::Banner => "banner",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::DataEnd => "end of data",
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
        };
        f.write_str(s)
    }
}

/// One message's envelope and the body facts the planner needs.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Reverse path without angle brackets; empty for the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub body_len: u64,
    /// The body has bytes above 0x7F.
    pub eight_bit: bool,
    /// Addresses or header fields carry UTF-8 (RFC 6531).
    pub smtputf8: bool,
}

impl<'a> Envelope<'a> {
    /// Derives the body facts from the message itself: 8-bit anywhere in the body, SMTPUTF8 when
    /// an address or the header section (up to the first empty line) is not ASCII.
    pub fn for_message(sender: &'a str, recipients: &'a [String], body: &[u8]) -> Self {
        let headers_utf8 = body
            .split(|&b| b == b'\n')
            .take_while(|line| !matches!(*line, b"" | b"\r"))
            .any(|line| !line.is_ascii());
        Self {
            sender,
            recipients,
            body_len: body.len() as u64,
            eight_bit: !body.is_ascii(),
            smtputf8: headers_utf8
                || !sender.is_ascii()
                || recipients.iter().any(|r| !r.is_ascii()),
        }
    }
}

/// How the body goes to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// `DATA`, then the body dot-stuffed and ended with `CRLF.CRLF` ([`DotStuffer`]).
    Data,
    /// `BDAT <len> LAST` followed by the body bytes unchanged.
    Bdat,
}

/// The outcome of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// Reply to MAIL FROM.
    pub mail: Reply,
    /// One reply per recipient, in the order given. When MAIL failed, each is that reply.
    pub rcpts: Vec<Reply>,
    /// The reply that decided the message for the accepted recipients: the reply after the
    /// body, or the refusal of the DATA command. `None` when no recipient was accepted.
    pub data: Option<Reply>,
    /// Nothing was sent: the client refused the message itself (replies are synthesized).
    pub local: bool,
}

impl TransactionResult {
    /// The reply that decides recipient `i`: its RCPT refusal, else the `data` reply.
    pub fn outcome(&self, i: usize) -> Option<&Reply> {
        let rcpt = self.rcpts.get(i)?;
        if rcpt.is_positive() {
            Some(self.data.as_ref().unwrap_or(rcpt))
        } else {
            Some(rcpt)
        }
    }

    fn refused(reply: Reply, recipients: usize) -> Self {
        Self {
            rcpts: vec![reply.clone(); recipients],
            mail: reply,
            data: None,
            local: true,
        }
    }
}

/// What the driver must do next for a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these command bytes in one write (a pipelined batch when several).
    Write { bytes: Vec<u8>, phase: Phase },
    /// Write the body the way `mode` says, then read.
    WriteBody { mode: BodyMode },
    /// Read one reply and pass it to [`Transaction::on_reply`].
    Read { phase: Phase },
    /// Over: call [`Transaction::finish`].
    Done,
}

/// A reply arrived that no command was waiting for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply {0}")]
pub struct UnexpectedReply(pub Reply);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Mail,
    Rcpt(usize),
    DataCmd,
    DataEnd,
    /// Reply to the lone "." sent when DATA got 354 although no recipient was accepted.
    Discard,
}

impl Slot {
    fn phase(self) -> Phase {
        match self {
            Slot::Mail => Phase::Mail,
            Slot::Rcpt(_) => Phase::Rcpt,
            Slot::DataCmd => Phase::Data,
            Slot::DataEnd | Slot::Discard => Phase::DataEnd,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    NextRcpt(usize),
    AfterRcpts,
    Body,
    Finished,
}

/// The state of one mail transaction: ask it for the next [`Action`], feed it replies.
#[derive(Debug)]
pub struct Transaction {
    pipelining: bool,
    mode: BodyMode,
    mail_cmd: Vec<u8>,
    /// (recipient index, RCPT command) for the recipients that go on the wire.
    wire: Vec<(usize, Vec<u8>)>,
    awaiting: VecDeque<Slot>,
    stage: Stage,
    mail: Option<Reply>,
    rcpts: Vec<Option<Reply>>,
    data_cmd: Option<Reply>,
    data: Option<Reply>,
    body_done: bool,
}

/// A finished transaction and whether the driver should send RSET before reusing the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub result: TransactionResult,
    pub needs_rset: bool,
}

fn local_reply(code: u16, e: (u8, u16, u16), text: &str) -> Reply {
    Reply::with_code(code, e, format!("cartero (local): {text}"))
}

impl Transaction {
    /// Plans a transaction, or refuses it locally (nothing to send) with synthesized replies:
    /// 552 5.3.4 when larger than the advertised SIZE, 553 5.6.7 when SMTPUTF8 is needed but
    /// not offered, 553 5.1.7 for an unusable sender, 553 5.1.3 when no recipient is usable.
    pub fn plan(caps: &Capabilities, env: &Envelope<'_>) -> Result<Self, TransactionResult> {
        let n = env.recipients.len();
        if !env.sender.is_empty() && !cartero_address::is_mailbox(env.sender) {
            let r = local_reply(553, (5, 1, 7), "invalid sender address");
            return Err(TransactionResult::refused(r, n));
        }
        if let Some(limit) = caps.size.filter(|limit| env.body_len > *limit) {
            let text = format!(
                "message size {} exceeds the server's limit {limit}",
                env.body_len
            );
            return Err(TransactionResult::refused(
                local_reply(552, (5, 3, 4), &text),
                n,
            ));
        }
        if env.smtputf8 && !caps.smtputf8 {
            let r = local_reply(
                553,
                (5, 6, 7),
                "SMTPUTF8 needed but not offered by the server",
            );
            return Err(TransactionResult::refused(r, n));
        }
        let mut rcpts = vec![None; n];
        let mut wire = Vec::with_capacity(n);
        for (i, rcpt) in env.recipients.iter().enumerate() {
            if !cartero_address::is_mailbox(rcpt) {
                if let Some(slot) = rcpts.get_mut(i) {
                    *slot = Some(local_reply(553, (5, 1, 3), "invalid recipient address"));
                }
            } else {
                wire.push((i, format!("RCPT TO:<{rcpt}>\r\n").into_bytes()));
            }
        }
        if wire.is_empty() {
            let r = local_reply(553, (5, 1, 3), "no valid recipient");
            return Err(TransactionResult::refused(r, n));
        }
        let mode = if env.eight_bit && !caps.eight_bit_mime && caps.chunking {
            BodyMode::Bdat
        } else {
            BodyMode::Data
        };
        let mut mail = format!("MAIL FROM:<{}>", env.sender);
        if caps.size_advertised {
            mail.push_str(&format!(" SIZE={}", env.body_len));
        }
        if env.eight_bit && caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        Ok(Self {
            pipelining: caps.pipelining,
            mode,
            mail_cmd: mail.into_bytes(),
            wire,
            awaiting: VecDeque::new(),
            stage: Stage::Start,
            mail: None,
            rcpts,
            data_cmd: None,
            data: None,
            body_done: false,
        })
    }

    /// The body transfer this transaction uses.
    pub fn body_mode(&self) -> BodyMode {
        self.mode
    }

    /// The next thing to do. Replies are always awaited before anything else is written.
    pub fn next_action(&mut self) -> Action {
        if let Some(slot) = self.awaiting.front() {
            return Action::Read {
                phase: slot.phase(),
            };
        }
        loop {
            match self.stage {
                Stage::Start => return self.start(),
                Stage::NextRcpt(k) => {
                    if !self.mail_ok() {
                        self.stage = Stage::Finished;
                    } else if let Some((i, cmd)) = self.wire.get(k) {
                        self.awaiting.push_back(Slot::Rcpt(*i));
                        self.stage = Stage::NextRcpt(k + 1);
                        let bytes = cmd.clone();
                        return Action::Write {
                            bytes,
                            phase: Phase::Rcpt,
                        };
                    } else {
                        self.stage = Stage::AfterRcpts;
                    }
                }
                Stage::AfterRcpts => {
                    if !self.any_accepted() {
                        self.stage = Stage::Finished;
                    } else if self.mode == BodyMode::Data {
                        self.awaiting.push_back(Slot::DataCmd);
                        self.stage = Stage::Body;
                        return Action::Write {
                            bytes: b"DATA\r\n".to_vec(),
                            phase: Phase::Data,
                        };
                    } else {
                        self.stage = Stage::Body;
                    }
                }
                Stage::Body => return self.body_action(),
                Stage::Finished => return Action::Done,
            }
        }
    }

    fn start(&mut self) -> Action {
        let mut bytes = self.mail_cmd.clone();
        self.awaiting.push_back(Slot::Mail);
        if !self.pipelining {
            self.stage = Stage::NextRcpt(0);
            return Action::Write {
                bytes,
                phase: Phase::Mail,
            };
        }
        for (i, cmd) in &self.wire {
            bytes.extend_from_slice(cmd);
            self.awaiting.push_back(Slot::Rcpt(*i));
        }
        // RFC 2920: DATA may end the batch; with BDAT the body waits for the RCPT replies.
        if self.mode == BodyMode::Data {
            bytes.extend_from_slice(b"DATA\r\n");
            self.awaiting.push_back(Slot::DataCmd);
            self.stage = Stage::Body;
        } else {
            self.stage = Stage::AfterRcpts;
        }
        Action::Write {
            bytes,
            phase: Phase::Mail,
        }
    }

    fn body_action(&mut self) -> Action {
        self.stage = Stage::Finished;
        let accepted = self.mail_ok() && self.any_accepted();
        let go_ahead = match self.mode {
            BodyMode::Bdat => accepted,
            BodyMode::Data => {
                let got_354 = self.data_cmd.as_ref().is_some_and(|r| r.code == 354);
                if got_354 && !accepted {
                    // The server wants data nobody will receive: end it empty, ignore the reply.
                    self.awaiting.push_back(Slot::Discard);
                    return Action::Write {
                        bytes: b".\r\n".to_vec(),
                        phase: Phase::DataEnd,
                    };
                }
                got_354 && accepted
            }
        };
        if go_ahead {
            self.awaiting.push_back(Slot::DataEnd);
            Action::WriteBody { mode: self.mode }
        } else {
            Action::Done
        }
    }

    fn mail_ok(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_positive)
    }

    fn any_accepted(&self) -> bool {
        self.wire.iter().any(|(i, _)| {
            self.rcpts
                .get(*i)
                .and_then(Option::as_ref)
                .is_some_and(Reply::is_positive)
        })
    }

    /// Hands over the reply to the oldest command still waiting for one.
    pub fn on_reply(&mut self, reply: Reply) -> Result<(), UnexpectedReply> {
        let Some(slot) = self.awaiting.pop_front() else {
            return Err(UnexpectedReply(reply));
        };
        match slot {
            Slot::Mail => self.mail = Some(reply),
            Slot::Rcpt(i) => {
                if let Some(r) = self.rcpts.get_mut(i) {
                    *r = Some(reply);
                }
            }
            Slot::DataCmd => self.data_cmd = Some(reply),
            Slot::DataEnd => {
                self.data = Some(reply);
                self.body_done = true;
            }
            Slot::Discard => {}
        }
        Ok(())
    }

    /// The result so far. Called before [`Action::Done`] (the driver gave up), missing replies
    /// are filled with a synthesized 451 4.4.2.
    pub fn finish(self) -> Completed {
        let missing = || local_reply(451, (4, 4, 2), "no reply from the server");
        let Self {
            wire,
            mail,
            rcpts,
            data,
            data_cmd,
            body_done,
            ..
        } = self;
        let mail = mail.unwrap_or_else(missing);
        let mut rcpts: Vec<Reply> = rcpts
            .into_iter()
            .map(|r| r.unwrap_or_else(missing))
            .collect();
        if !mail.is_positive() {
            for (i, _) in &wire {
                if let Some(r) = rcpts.get_mut(*i) {
                    *r = mail.clone();
                }
            }
        }
        let any_ok = rcpts.iter().any(Reply::is_positive);
        let data = match (data, data_cmd) {
            (Some(d), _) => Some(d),
            (None, Some(cmd)) if any_ok && cmd.code != 354 => Some(cmd),
            (None, _) if any_ok => Some(missing()),
            _ => None,
        };
        Completed {
            needs_rset: !body_done,
            result: TransactionResult {
                mail,
                rcpts,
                data,
                local: false,
            },
        }
    }
}

/// Streaming dot-stuffer for DATA (RFC 5321 §4.5.2): doubles a leading `.` on each line and
/// normalizes bare CR and bare LF to CRLF (§2.3.8), so the terminator cannot be forged and
/// servers that refuse bare line ends accept the body.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self {
            line_start: true,
            pending_cr: false,
        }
    }
}

impl DotStuffer {
    /// A stuffer at the start of the body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the stuffed form of the next piece of body to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 4);
        while !input.is_empty() {
            if self.pending_cr {
                self.pending_cr = false;
                self.end_line(out);
                if let Some(rest) = input.strip_prefix(b"\n") {
                    input = rest;
                    continue;
                }
            }
            if self.line_start && input.first() == Some(&b'.') {
                out.push(b'.');
            }
            let end = input
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(input.len());
            let (run, rest) = input.split_at(end);
            out.extend_from_slice(run);
            if !run.is_empty() {
                self.line_start = false;
            }
            match rest.split_first() {
                Some((b'\r', tail)) => {
                    self.pending_cr = true;
                    input = tail;
                }
                Some((_, tail)) => {
                    self.end_line(out);
                    input = tail;
                }
                None => input = rest,
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.line_start = true;
    }

    /// Ends the body: a final CRLF when missing, then `.` CRLF.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.line_start {
            self.end_line(out);
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The complete DATA payload for `body`, terminator included.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut stuffer = DotStuffer::new();
    stuffer.push(body, &mut out);
    stuffer.finish(&mut out);
    out
}

/// Inverse of [`dot_stuff`]: the body before the `.` CRLF line, or `None` without one.
pub fn dot_unstuff(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let (line, tail) = rest.split_at(end);
        if line == b"." {
            return Some(out);
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        rest = tail.get(2..).unwrap_or_default();
    }
}
