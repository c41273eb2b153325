//! Message body reception: DATA with dot-unstuffing (RFC 5321 §4.5.2) and a size-bounded sink
//! shared with BDAT.
//!
//! Only `CRLF . CRLF` ends DATA. A bare LF or bare CR around a dot is plain content, which is what
//! defeats "SMTP smuggling" (a second message hidden behind `LF . LF` that a more lenient hop would
//! split off).

/// Collects body bytes up to `max`; beyond that it drops everything and remembers the overflow,
/// so a huge message costs no more memory than the limit.
#[derive(Debug)]
pub(super) struct Sink<'a> {
    pub data: &'a mut Vec<u8>,
    pub max: usize,
    pub overflow: &'a mut bool,
}

impl Sink<'_> {
    pub fn push(&mut self, bytes: &[u8]) {
        if *self.overflow || bytes.is_empty() {
            return;
        }
        if self.data.len().saturating_add(bytes.len()) > self.max {
            *self.overflow = true;
            *self.data = Vec::new();
        } else {
            self.data.extend_from_slice(bytes);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At the start of a line (also the start of the body).
    LineStart,
    /// A `.` at line start, not emitted yet.
    Dot,
    /// `.` then CR at line start: the terminator if LF follows.
    DotCr,
    /// Inside a line.
    Mid,
    /// Just emitted a CR inside a line.
    Cr,
}

/// Incremental DATA reader; feed it any split of the input and it produces the same body.
#[derive(Debug, Clone)]
pub(super) struct DotReader {
    phase: Phase,
    line_len: usize,
    max_line: usize,
    long_line: bool,
}

impl DotReader {
    /// `max_line` is the longest accepted wire line including CRLF; 0 disables the check.
    pub fn new(max_line: usize) -> Self {
        Self {
            phase: Phase::LineStart,
            line_len: 0,
            max_line,
            long_line: false,
        }
    }

    /// True when some line was longer than the limit (the message must then be refused).
    pub fn long_line(&self) -> bool {
        self.long_line
    }

    fn grow(&mut self, n: usize) {
        self.line_len = self.line_len.saturating_add(n);
        if self.max_line > 0 && self.line_len > self.max_line {
            self.long_line = true;
        }
    }

    /// Consumes `input`; returns how many bytes were used when the terminator was reached
    /// (the rest belongs to the next command), or `None` when all of it was body.
    pub fn scan(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Option<usize> {
        let mut i = 0;
        while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
            if self.phase == Phase::Mid {
                // Fast path: copy the run up to the next CR in one go.
                let run = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
                sink.push(rest.get(..run).unwrap_or_default());
                self.grow(run);
                i += run;
                continue_if_cr(self, rest.get(run..), sink, &mut i);
                continue;
            }
            let Some(&b) = rest.first() else { break };
            i += 1;
            if self.step(b, sink) {
                return Some(i);
            }
        }
        None
    }

    /// One byte outside the fast path; true when it completed the terminator.
    fn step(&mut self, b: u8, sink: &mut Sink<'_>) -> bool {
        match self.phase {
            Phase::LineStart if b == b'.' => {
                self.grow(1);
                self.phase = Phase::Dot;
            }
            // The stuffed dot (if any) is dropped: this byte starts the real line content.
            Phase::LineStart | Phase::Dot | Phase::Mid => self.content(b, sink),
            Phase::DotCr if b == b'\n' => return true,
            Phase::DotCr => {
                // ".\r" followed by something else: the dot was stuffing, the CR is content.
                sink.push(b"\r");
                self.phase = Phase::Cr;
                return self.step(b, sink);
            }
            Phase::Cr if b == b'\n' => {
                sink.push(b"\n");
                self.grow(1);
                self.line_len = 0;
                self.phase = Phase::LineStart;
            }
            Phase::Cr => self.content(b, sink),
        }
        // A "." then CR at line start must wait for the next byte before being judged.
        false
    }

    fn content(&mut self, b: u8, sink: &mut Sink<'_>) {
        if self.phase == Phase::Dot && b == b'\r' {
            self.grow(1);
            self.phase = Phase::DotCr;
            return;
        }
        sink.push(&[b]);
        self.grow(1);
        self.phase = if b == b'\r' { Phase::Cr } else { Phase::Mid };
    }
}

fn continue_if_cr(reader: &mut DotReader, rest: Option<&[u8]>, sink: &mut Sink<'_>, i: &mut usize) {
    if rest.is_some_and(|r| r.first() == Some(&b'\r')) {
        sink.push(b"\r");
        reader.grow(1);
        reader.phase = Phase::Cr;
        *i += 1;
    }
}

/// Dot-stuffs `body` for DATA and appends the terminator; a body not ending in CRLF gets one.
/// Used by tests and by anything that needs to replay a body through the session.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in body {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = prev == b'\r' && b == b'\n';
        prev = b;
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]], max: usize) -> (Vec<u8>, bool, Option<usize>, bool) {
        let mut data = Vec::new();
        let mut overflow = false;
        let mut reader = DotReader::new(1000);
        let mut end = None;
        for c in chunks {
            let mut sink = Sink {
                data: &mut data,
                max,
                overflow: &mut overflow,
            };
            end = reader.scan(c, &mut sink);
            if end.is_some() {
                break;
            }
        }
        (data, overflow, end, reader.long_line())
    }

    #[test]
    fn unstuffs_and_stops_at_terminator() {
        let (data, _, end, _) = read_all(&[b"a\r\n..b\r\n.c\r\n.\r\nMAIL"], 100);
        assert_eq!(data, b"a\r\n.b\r\nc\r\n");
        assert_eq!(end, Some(15));
    }

    #[test]
    fn terminator_split_across_chunks() {
        let (data, _, end, _) = read_all(&[b"x\r", b"\n", b".", b"\r", b"\n"], 100);
        assert_eq!(data, b"x\r\n");
        assert_eq!(end, Some(1));
    }

    #[test]
    fn bare_lf_dot_is_not_an_end() {
        let (data, _, end, _) = read_all(&[b"a\n.\nb\r.\rc\r\n"], 100);
        assert_eq!(end, None);
        assert_eq!(data, b"a\n.\nb\r.\rc\r\n");
    }

    #[test]
    fn dot_cr_without_lf_keeps_the_cr() {
        let (data, _, end, _) = read_all(&[b".\rx\r\n.\r\n"], 100);
        assert_eq!(data, b"\rx\r\n");
        assert!(end.is_some());
    }

    #[test]
    fn overflow_drops_data_but_still_finds_end() {
        let (data, overflow, end, _) = read_all(&[b"0123456789\r\n", b"0123456789\r\n.\r\n"], 15);
        assert!(overflow);
        assert!(data.is_empty());
        assert!(end.is_some());
    }

    #[test]
    fn long_lines_are_flagged() {
        let mut line = vec![b'a'; 999];
        line.extend_from_slice(b"\r\n.\r\n");
        assert!(read_all(&[&line], 5000).3);
        assert!(!read_all(&[&line[1..]], 5000).3);
    }

    #[test]
    fn stuffing_round_trips() {
        let body = b".a\r\n\r\n..\r\nb.\r\n".to_vec();
        let stuffed = dot_stuff(&body);
        assert_eq!(stuffed, b"..a\r\n\r\n...\r\nb.\r\n.\r\n");
        assert_eq!(read_all(&[&stuffed], 100).0, body);
    }
}
