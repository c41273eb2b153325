//! Several messages in one input: mailbox exports and forwarding scripts hand over bounces with
//! mbox `From ` separator lines, sometimes two bounces in one file. Each is read on its own.

/// Most messages read from one input; the rest is ignored.
pub(crate) const MAX_MESSAGES: usize = 8;

/// The messages of `raw`: split at mbox `From ` lines (one at the very start is dropped). Input
/// without separators is one message.
pub(crate) fn split(raw: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < raw.len() && starts.len() <= MAX_MESSAGES {
        let line_end = raw
            .get(at..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
            .map_or(raw.len(), |p| at + p + 1);
        let line = raw.get(at..line_end).unwrap_or(&[]);
        let after_blank = at == 0 || raw.get(..at).is_some_and(ends_with_blank_line);
        if after_blank && is_from_line(line) {
            starts.push((at, line_end));
        }
        at = line_end;
    }
    if starts.is_empty() {
        return vec![raw];
    }
    let mut out = Vec::new();
    if let Some(&(first, _)) = starts.first()
        && first > 0
    {
        out.push(raw.get(..first).unwrap_or(raw));
    }
    for (i, &(_, body_start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(raw.len(), |&(s, _)| s);
        let part = raw.get(body_start..end).unwrap_or(&[]);
        if !part.iter().all(u8::is_ascii_whitespace) {
            out.push(part);
        }
    }
    out.truncate(MAX_MESSAGES);
    if out.is_empty() { vec![raw] } else { out }
}

/// `From sender date` — not a `From:` header, and with something after the sender.
fn is_from_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    // The envelope sender, then a date: "From MAILER-DAEMON Thu Dec  3 10:00:00 2026".
    let sender_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let sender = rest.get(..sender_end).unwrap_or(&[]);
    let date = rest.get(sender_end..).unwrap_or(&[]);
    !sender.is_empty()
        && !sender.contains(&b':')
        && date.iter().filter(|b| b.is_ascii_digit()).count() >= 4
        && !line.contains(&b'\0')
}

fn ends_with_blank_line(before: &[u8]) -> bool {
    before.ends_with(b"\n\n") || before.ends_with(b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_split_and_a_leading_one_is_dropped() {
        let raw = b"From MAILER-DAEMON Thu Dec  3 10:00:00 2026\nSubject: a\n\nbody a\n\n\
From MAILER-DAEMON Thu Dec  3 10:01:00 2026\nSubject: b\n\nbody b\n";
        let parts = split(raw);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with(b"Subject: a"));
        assert!(parts[1].starts_with(b"Subject: b"));
    }

    #[test]
    fn a_from_word_inside_a_paragraph_is_not_a_separator() {
        let raw = b"Subject: a\n\nHello\nFrom the team at example.org\n";
        assert_eq!(split(raw).len(), 1);
        let raw = b"Subject: a\n\nFrom: someone <a@example.org>\n";
        assert_eq!(split(raw).len(), 1);
        // MDaemon's virus notice aligns its labels: "From   : sender".
        let raw = b"Subject: a\n\nFrom   : news@example.org 2026 1234\n";
        assert_eq!(split(raw).len(), 1);
    }
}
