//! Parsing of one command line (RFC 5321 §4.1) into a [`Command`].
//!
//! Errors come back as the reply the session should send, so the caller cannot forget the enhanced
//! code. Policy (size limits, sequence) is the session's job, not the parser's.

use crate::reply::Reply;

/// `BODY=` values we advertise (8BITMIME, RFC 6152). BINARYMIME is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// ESMTP parameters of `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct MailParams {
    pub size: Option<u64>,
    pub body: Body,
    pub smtputf8: bool,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        address: String,
        params: MailParams,
    },
    Rcpt {
        address: String,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// Known verbs we deliberately do not implement (EXPN, TURN, ETRN, ...).
    NotImplemented,
}

fn syntax(text: &str) -> Reply {
    Reply::with_code(501, (5, 5, 4), text)
}

/// Parses a command line without its CRLF. The line is already known to be valid UTF-8 without
/// control characters.
pub(super) fn parse_command(line: &str) -> Result<Command, Reply> {
    let (verb, rest) = match line.find(' ') {
        Some(i) => (line.get(..i).unwrap_or(""), line.get(i + 1..).unwrap_or("")),
        None => (line, ""),
    };
    let rest = rest.trim_matches(' ');
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "EHLO" | "HELO" => {
            // Only the first token matters; some clients append junk after the domain.
            let name = rest.split(' ').next().unwrap_or("");
            if name.is_empty() {
                return Err(syntax(&format!("Syntax: {verb} hostname")));
            }
            Ok(if verb == "EHLO" {
                Command::Ehlo(name.to_string())
            } else {
                Command::Helo(name.to_string())
            })
        }
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(rest, Command::Data, "Syntax: DATA"),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(rest, Command::Rset, "Syntax: RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "VRFY" if rest.is_empty() => Err(syntax("Syntax: VRFY address")),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(rest, Command::StartTls, "Syntax: STARTTLS"),
        "AUTH" => parse_auth(rest),
        "EXPN" | "TURN" | "ETRN" | "SEND" | "SOML" | "SAML" => Ok(Command::NotImplemented),
        _ => Err(Reply::with_code(500, (5, 5, 1), "Command unrecognized")),
    }
}

fn no_args(rest: &str, cmd: Command, usage: &str) -> Result<Command, Reply> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(syntax(usage))
    }
}

/// Strips a case-insensitive `FROM:`/`TO:` keyword; tolerates spaces after the colon.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        Some(rest.get(keyword.len()..)?.trim_start_matches(' '))
    } else {
        None
    }
}

fn parse_mail(rest: &str) -> Result<Command, Reply> {
    let path = strip_keyword(rest, "FROM:").ok_or_else(|| syntax("Syntax: MAIL FROM:<address>"))?;
    let (address, params) = parse_path(path, PathKind::Reverse)?;
    let mut out = MailParams::default();
    for param in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                // An absurd declared size is "too big" (552), not a syntax error.
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax("Bad SIZE parameter"));
                }
                out.size = Some(parse_digits(v).unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => out.body = Body::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                out.body = Body::EightBitMime;
            }
            ("SMTPUTF8", None) => out.smtputf8 = true,
            // RFC 4954 §5: the server may ignore AUTH= when it does not trust the submitter.
            ("AUTH", Some(_)) => {}
            _ => return Err(unsupported_param(param)),
        }
    }
    Ok(Command::Mail {
        address,
        params: out,
    })
}

fn unsupported_param(param: &str) -> Reply {
    let shown: String = param.chars().take(64).collect();
    Reply::with_code(555, (5, 5, 4), format!("Unsupported parameter {shown}"))
}

fn parse_rcpt(rest: &str) -> Result<Command, Reply> {
    let path = strip_keyword(rest, "TO:").ok_or_else(|| syntax("Syntax: RCPT TO:<address>"))?;
    let (address, params) = parse_path(path, PathKind::Forward)?;
    // DSN (NOTIFY/ORCPT) is not advertised, so any parameter is unknown.
    if let Some(param) = params.split(' ').find(|p| !p.is_empty()) {
        return Err(unsupported_param(param));
    }
    Ok(Command::Rcpt { address })
}

fn parse_digits(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn parse_bdat(rest: &str) -> Result<Command, Reply> {
    let mut parts = rest.split(' ').filter(|p| !p.is_empty());
    let usage = || syntax("Syntax: BDAT size [LAST]");
    let size = parts.next().and_then(parse_digits).ok_or_else(usage)?;
    let last = match parts.next() {
        None => false,
        Some(p) if p.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(usage()),
    };
    if parts.next().is_some() {
        return Err(usage());
    }
    Ok(Command::Bdat { size, last })
}

fn parse_auth(rest: &str) -> Result<Command, Reply> {
    let mut parts = rest.split(' ').filter(|p| !p.is_empty());
    let mechanism = parts
        .next()
        .ok_or_else(|| syntax("Syntax: AUTH mechanism [initial-response]"))?
        .to_ascii_uppercase();
    let initial = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return Err(syntax("Syntax: AUTH mechanism [initial-response]"));
    }
    Ok(Command::Auth { mechanism, initial })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    /// MAIL FROM: `<>` allowed.
    Reverse,
    /// RCPT TO: `<postmaster>` without a domain allowed, `<>` not.
    Forward,
}

/// Parses `<path>` and returns the mailbox (source route dropped) and what follows the `>`.
fn parse_path(input: &str, kind: PathKind) -> Result<(String, &str), Reply> {
    let bad = || syntax("Bad address syntax");
    let inner_start = input.strip_prefix('<').ok_or_else(bad)?;
    let close = find_closing_bracket(inner_start).ok_or_else(bad)?;
    let inner = inner_start.get(..close).ok_or_else(bad)?;
    let after = inner_start.get(close + 1..).ok_or_else(bad)?;
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(bad());
    }
    // RFC 5321 §4.1.2: a source route (`@a,@b:`) must be accepted and ignored.
    let mailbox = if inner.starts_with('@') {
        inner.split_once(':').map(|(_, m)| m).ok_or_else(bad)?
    } else {
        inner
    };
    if mailbox.is_empty() {
        return match kind {
            PathKind::Reverse => Ok((String::new(), after)),
            PathKind::Forward => Err(bad()),
        };
    }
    if kind == PathKind::Forward && mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok((mailbox.to_string(), after));
    }
    if !cartero_address::is_mailbox(mailbox) {
        return Err(bad());
    }
    Ok((mailbox.to_string(), after))
}

/// Byte index of the `>` closing the path, skipping quoted strings of the local part.
fn find_closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(line: &str) -> Result<Command, Reply> {
        parse_command(line)
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(addr("ehlo x.test"), Ok(Command::Ehlo("x.test".into())));
        assert_eq!(addr("HeLo x.test"), Ok(Command::Helo("x.test".into())));
        assert_eq!(addr("rset"), Ok(Command::Rset));
        assert_eq!(
            addr("bdat 10 last"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
    }

    #[test]
    fn mail_from_with_params() {
        let cmd = addr("MAIL FROM: <a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8").unwrap();
        let Command::Mail { address, params } = cmd else {
            panic!("not MAIL")
        };
        assert_eq!(address, "a@b.test");
        assert_eq!(params.size, Some(100));
        assert_eq!(params.body, Body::EightBitMime);
        assert!(params.smtputf8);
    }

    #[test]
    fn null_sender_and_source_route() {
        let Ok(Command::Mail { address, .. }) = addr("MAIL FROM:<>") else {
            panic!()
        };
        assert_eq!(address, "");
        let Ok(Command::Rcpt { address }) = addr("RCPT TO:<@relay.test,@r2.test:u@d.test>") else {
            panic!()
        };
        assert_eq!(address, "u@d.test");
        assert_eq!(
            addr("RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt {
                address: "Postmaster".into()
            })
        );
    }

    #[test]
    fn quoted_local_part_may_hold_brackets_and_at() {
        let Ok(Command::Rcpt { address }) = addr(r#"RCPT TO:<"a>b@c"@d.test>"#) else {
            panic!()
        };
        assert_eq!(address, r#""a>b@c"@d.test"#);
    }

    #[test]
    fn bad_syntax_gives_501_554() {
        for line in [
            "MAIL FROM:a@b.test",
            "MAIL FROM:<a@b.test",
            "MAIL FROM:<a@>",
            "MAIL FROM:<@b.test>",
            "MAIL FROM:<a..b@c.test>",
            "MAIL TO:<a@b.test>",
            "RCPT TO:<>",
            "RCPT TO:<a@-b.test>",
            "MAIL FROM:<a@b.test> SIZE=12x",
            "BDAT",
            "BDAT x",
            "BDAT 1 LAST more",
            "EHLO",
            "DATA now",
            "VRFY",
        ] {
            let r = addr(line).unwrap_err();
            assert_eq!(
                (r.code, r.enhanced.map(|e| e.to_string())),
                (501, Some("5.5.4".into())),
                "{line}"
            );
        }
    }

    /// The listener allowed 320 octets; RFC 5321 §4.5.3.1 allows a 64-octet local part and a
    /// 256-octet path (brackets included), the one rule every component now applies.
    #[test]
    fn listener_refuses_paths_over_the_rfc_5321_limits() {
        let ok_local = format!("RCPT TO:<{}@d.test>", "a".repeat(64));
        assert!(addr(&ok_local).is_ok());
        let long_local = format!("RCPT TO:<{}@d.test>", "a".repeat(65));
        assert_eq!(addr(&long_local).unwrap_err().code, 501);
        // 254 octets between the brackets is the longest path.
        let fits = format!("MAIL FROM:<a@{}.test>", "b".repeat(247));
        assert!(addr(&fits).is_ok(), "{}", fits.len());
        let over = format!("MAIL FROM:<a@{}.test>", "b".repeat(248));
        assert_eq!(addr(&over).unwrap_err().code, 501);
    }

    #[test]
    fn quoted_local_part_cannot_hide_control_characters() {
        assert_eq!(addr("RCPT TO:<\"a\tb\"@d.test>").unwrap_err().code, 501);
        assert!(addr("RCPT TO:<\"a b\"@d.test>").is_ok());
    }

    #[test]
    fn unknown_params_and_verbs() {
        assert_eq!(addr("MAIL FROM:<a@b.test> RET=FULL").unwrap_err().code, 555);
        assert_eq!(
            addr("RCPT TO:<a@b.test> NOTIFY=NEVER").unwrap_err().code,
            555
        );
        assert_eq!(addr("FROB").unwrap_err().code, 500);
        assert_eq!(addr("EXPN list"), Ok(Command::NotImplemented));
    }
}
