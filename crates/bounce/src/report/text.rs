//! Non-standard bounces: the family is recognised by its fixed wording, recipients by the places
//! bounce texts put addresses, and each recipient's diagnostic by the reply found in the text
//! that follows its address.

use super::dsn;
use super::fields::{self, find_codes};
use super::mime::Extracted;
use super::{MAX_CONTEXT, MAX_RECIPIENTS, RecipientReport};
use regex::Regex;
use std::sync::LazyLock;

/// A bounce read from its text.
pub(crate) struct TextBounce {
    pub(crate) family: &'static str,
    pub(crate) recipients: Vec<RecipientReport>,
}

/// Family signatures, most specific first; matched against subject, From and the text.
const FAMILIES: &[(&str, &str)] = &[
    (
        "yahoo",
        r"(?i)Sorry, we were unable to deliver your message|yahoo\.com account|mta\d*\.\S*yahoo",
    ),
    ("qmail", r"(?i)This is the qmail-send program|qmail-send"),
    (
        "dma",
        r"(?i)This is the DragonFly Mail Agent|DragonFly Mail Agent",
    ),
    (
        "fml",
        r"(?i)\bfml \[fml|NOT MEMBER article from|You are not a member of this mailing list|Original mail as follows",
    ),
    (
        "imail",
        r"(?i)\bIMail\b|Ipswitch|Body of message generated response|Invalid final delivery userid",
    ),
    (
        "postfix",
        r"(?i)This is the mail system at host|The Postfix program",
    ),
    (
        "exim",
        r"(?i)This message was created automatically by mail delivery software|A message that you sent could not be delivered to one or more of",
    ),
    ("courier", r"(?i)running the Courier mail server"),
    (
        "mdaemon",
        r"(?i)\bMDaemon\b|PERMANENT fatal delivery errors",
    ),
    (
        "groupwise",
        r"(?i)GroupWise|The message that you sent was undeliverable to the following",
    ),
    (
        "domino",
        r"(?i)Lotus Domino|Domino Directory|DELIVERY FAILURE:|was not delivered to:",
    ),
    ("mimecast", r"(?i)mimecast"),
    ("barracuda", r"(?i)barracuda"),
    (
        "ses",
        r"(?i)amazonses\.com|An error occurred while trying to deliver the mail to the following recipients",
    ),
    (
        "gmail",
        r"(?i)googlemail\.com|google\.com/mail|\*\* (Address not found|Message not delivered|Message blocked|Delivery incomplete) \*\*|Delivery to the following recipient failed permanently",
    ),
    (
        "office365",
        r"(?i)Office 365|protection\.outlook\.com|outlook\.com|Your message to \S+ couldn't be delivered",
    ),
    (
        "exchange",
        r"(?i)Delivery has failed to these recipients or groups|Remote Server returned|Your message did not reach some or all of the intended recipients|Diagnostic information for administrators|The following recipient\(s\) cannot be reached",
    ),
    (
        "smtpsvc",
        r"(?i)This is an automatically generated Delivery Status Notification",
    ),
    (
        "messaging-server",
        r"(?i)This report relates to a message you sent with the following header fields",
    ),
    (
        "sendmail",
        r"(?i)The following addresses had permanent fatal errors|Transcript of session follows|The original message was received at",
    ),
];

/// Generic signs of a bounce when no family matched.
const GENERIC: &str = r"(?i)undeliver|undelivered|delivery (status notification|failure|failed|notification|problem|error|report)|failure notice|failed delivery|returned mail|returning message|mail delivery (failed|system|subsystem|error)|mail system error|non[- ]?delivery|nondeliverable|could not (be )?deliver|couldn't be delivered|unable to deliver|delivery has failed|message not delivered|not delivered|mail (was )?not sent|could not send message|mailer-daemon|mail-daemon|postmaster@|mail administrator|mail router|\bmailer\b|(?u:unzustellbar|nicht zustellbar|non remis|non distribu|impossible de (remettre|distribuer)|no se (pudo|puede) entregar|no entregado|não (foi )?entregue|nao entregue|falha na entrega|non recapitabile|mancata consegna|onbestelbaar|niet afgeleverd|не доставлено|недоставлен|配信|送信失敗|未達|エラー|退信|投递失败|发送失败|退回|無法投遞|전송 ?실패|반송)";

/// Where the returned original starts in a text bounce; everything after is the original.
const ORIGINAL_MARKERS: &str = r"(?mi)^[ \t]*(?:-+ ?(?:Below this line is a copy of the message|This is a copy of the message|Original message|Original Message follows|Returned message|Forwarded message|Unsent message below|The header of the original message is following|Message header follows)|Original message headers:|Below this line is a copy of the message|Original message follows|Message headers follow|Unsent message follows|Headers of the original message|Here is a copy of the first part of the message|Below is a copy of the original message|Original mail as follows|-+ ?(?:원본 메일|元のメッセージ|元のメール|原始邮件|原邮件|原始郵件|Mensaje original|Message d'origine|Message original|Originalnachricht|Ursprüngliche Nachricht|Mensagem original|Messaggio originale|Исходное сообщение|Оригинальное сообщение))";

/// Places addresses appear in bounce texts; group 1 is the address.
const ADDRESS_SITES: &str = r#"(?mi)^[ \t]*<([^\s<>@"]+@[^\s<>"]+)>[ \t]*(?::|\.\.\.|$)|^[ \t]*'?([^\s<>@'"(,:：]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})'?[ \t]*(?:$|on\s|\(|:|,)|^[245]\d\d[ -]<?([^\s<>@]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?\.\.\.|(?:delivered to|message to|mail to|deliver(?:ing|y)? (?:of )?(?:your |the )?(?:mail |message |e-?mail )?to|recipients?(?: address(?:es)?)?|addressed to|failed (?:recipient|address)(?:es|s)?|undeliverable to|could not be delivered to|not (?:be )?delivered to|unknown (?:user|recipient|address)|user unknown|no such (?:user|mailbox)|invalid (?:final delivery )?(?:userid|user|recipient|address)|delivery failed \d+ attempts|bad address|mailbox (?:full|size exceeded|unavailable)(?: for)?|Original-Recipient|Final-Recipient|destinatario|destinataire|empf(?:ä|ae)nger|endere(?:ç|c)o|宛先|送信先|收件人|收信人|(?:수신자|받는 ?사람)(?: ?주소)?|generated (?:by|from))[: \t：]+(?:rfc822;\s*)?[<"'(]?([^\s<>@"'():：]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})[>"')]?|RCPT TO:\s*<([^\s<>@]+@[^\s<>]+)>|^[^\n:<>@]{2,60}[:：][ \t]*<?([^\s<>@"'():：]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?[ \t]*$"#;

/// Lines that carry the remote reply.
const REPLY_LINE: &str = r"(?m)^.*(?:\b[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b|\b[45]\d\d[ -:]|\(#[245]\.\d{1,3}\.\d{1,3}\)|Remote Server returned|said:|reason:).*$";

const DELAYED: &str = r"(?i)\bdelayed\b|will (continue|keep) (trying|to try)|has not yet been delivered|not been delivered yet|still trying|Delivery Status Notification \(Delay\)|temporary (failure|problem)|retry (until|for)|Warning: message";

/// Subjects of positive delivery notifications sent as plain text (Exchange "Delivered:" and
/// "Relayed:" receipts, success DSNs without a status part): never a failure.
const SUCCESS: &str = r"(?i)^\s*(delivered|relayed|expanded)\s*:|^\s*delivery status notification \(success\)|^\s*successful(ly)? (mail )?deliver|^\s*delivery (receipt|confirmation|report: delivered)|^\s*return receipt";

const REMOTE_MTA: &str = r"(?i)(?:\bhost\s+([A-Za-z0-9.-]+\.[A-Za-z]{2,})\.?\s*\[|while talking to ([A-Za-z0-9.-]+\.[A-Za-z]{2,})|Generating server:\s*([A-Za-z0-9.-]+\.[A-Za-z]{2,})|Remote host:\s*([A-Za-z0-9.-]+))";

/// Status inferred from wording when the bounce gives no code, and the wording it stands for.
const PHRASES: &[(&str, &str)] = &[
    (
        r"(?i)no mailbox here by that name|not listed in (the )?(Domino )?Directory|user not found|user unknown|unknown user|does not exist|doesn't exist|no such (user|mailbox|recipient)|address (couldn't|could not) be found|RecipNotFound|invalid (recipient|mailbox|address)|account (is )?(disabled|inactive)|mailbox unavailable",
        "5.1.1",
    ),
    (
        r"(?i)(mailbox|mail ?file) (is )?full|over ?quota|quota exceeded|exceed(s|ed) (the |its |their )?(storage|quota)|insufficient storage",
        "5.2.2",
    ),
    (
        r"(?i)unrouteable (mail )?(address|domain)|non-existent host|host or domain name not found|domain (name )?not found|no mx|name service error|bad destination mailbox address",
        "5.1.2",
    ),
    (
        r"(?i)retry timeout exceeded|message expired|delivery time expired|could not be delivered within|maximum time|timed? ?out",
        "4.4.7",
    ),
    (
        r"(?i)message (size|too (large|big))|too large|exceeds? (the )?(maximum )?(message )?size",
        "5.3.4",
    ),
    (
        r"(?i)spam|blacklist|blocklist|blocked|reputation|policy",
        "5.7.1",
    ),
];

fn compile(p: &str) -> Option<Regex> {
    Regex::new(p).ok()
}

static FAMILY_RES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    FAMILIES
        .iter()
        .filter_map(|(f, p)| Some((*f, compile(p)?)))
        .collect()
});
static GENERIC_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(GENERIC));
static ORIGINAL_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(ORIGINAL_MARKERS));
static ADDRESS_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(ADDRESS_SITES));
static REPLY_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(REPLY_LINE));
static DELAYED_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(DELAYED));
static EXPANSION_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?mi)^[ \t]*<?([^\s<>@]+@[A-Za-z0-9.-]+)>?[ \t]*\n[ \t]*\(?generated from <?([^\s<>@()]+@[A-Za-z0-9.-]+)",
    )
});
static SUCCESS_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(SUCCESS));
static REMOTE_RE: LazyLock<Option<Regex>> = LazyLock::new(|| compile(REMOTE_MTA));
static PHRASE_RES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    PHRASES
        .iter()
        .filter_map(|(p, s)| Some((compile(p)?, *s)))
        .collect()
});

/// Part of the text scanned for signatures: bounce wording is at the top.
const SIGNATURE_WINDOW: usize = 16 * 1024;

fn prefix(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The family of a text bounce, or `None` when the message does not look like a bounce.
pub(crate) fn family(msg: &Extracted) -> Option<&'static str> {
    let head = format!(
        "{}\n{}\n{}\n{}",
        msg.subject.as_deref().unwrap_or(""),
        msg.top.get("From").unwrap_or(""),
        msg.top.get("X-MLServer").unwrap_or(""),
        prefix(&msg.text, SIGNATURE_WINDOW)
    );
    if let Some((f, _)) = FAMILY_RES.iter().find(|(_, re)| re.is_match(&head)) {
        return Some(f);
    }
    let subject_from = format!(
        "{}\n{}",
        msg.subject.as_deref().unwrap_or(""),
        msg.top.get("From").unwrap_or("")
    );
    GENERIC_RE
        .as_ref()
        .is_some_and(|re| re.is_match(&subject_from))
        .then_some("generic")
}

/// Reads a text bounce; `None` when it is not one (or a generic-looking message names nobody).
pub(crate) fn read(msg: &Extracted) -> Option<TextBounce> {
    let family = family(msg)?;
    let (recipients, _) = recipients_in(msg);
    if recipients.is_empty() && family == "generic" {
        return None;
    }
    Some(TextBounce { family, recipients })
}

/// What the text says about each recipient, whatever the format: the addresses of
/// `X-Failed-Recipients` when the header is there (Exim, Google Groups), else those found in the
/// text, else the returned original's `To`. Also returns the explanation they were read from (the
/// text before the returned original).
pub(crate) fn recipients_in(msg: &Extracted) -> (Vec<RecipientReport>, &str) {
    let (body, pasted) = split_original(&msg.text);
    let subject = msg.subject.as_deref().unwrap_or("");
    let action = if SUCCESS_RE.as_ref().is_some_and(|re| re.is_match(subject)) {
        "delivered"
    } else if DELAYED_RE
        .as_ref()
        .is_some_and(|re| re.is_match(body) || re.is_match(subject))
    {
        "delayed"
    } else {
        "failed"
    };
    // The returned original (a MIME part, else pasted after a marker): its sender is us, never
    // a failed recipient; its To names the recipient when the text does not.
    let original = msg.original.as_ref().or(pasted.as_ref());
    let sender = original
        .and_then(|o| o.get("From"))
        .and_then(fields::header_address);
    let message_id = msg.original_message_id();
    let skip = |a: &str| {
        is_service_address(a)
            || message_id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(a))
            || [msg.from.as_deref(), sender.as_deref()]
                .into_iter()
                .flatten()
                .any(|f| f.eq_ignore_ascii_case(a))
    };
    let sites = address_sites(body, &skip);
    let failed = dsn::failed_recipients(msg);
    let addresses: Vec<&str> = if failed.is_empty() {
        without_expansions(body, distinct(&sites))
    } else {
        without_expansions(body, failed.iter().map(String::as_str).collect())
    };
    // One recipient: the whole explanation is about it (the reason, even the reply, may come
    // before the address: "Delivery failed for the following reason: … undeliverable to a@b").
    let single = addresses.len() == 1;
    let mut recipients: Vec<RecipientReport> = addresses
        .into_iter()
        .take(MAX_RECIPIENTS)
        .map(|addr| recipient(body, &sites, addr, action, single))
        .collect();
    if single
        && let Some(r) = recipients.first_mut()
        && r.diagnostic.is_none()
        && let Some(addr) = r.address.clone()
        && let Some(reply) = reply_in(body, &addr)
    {
        *r = with_diagnostic(std::mem::take(r), reply, action);
    }
    if recipients.is_empty()
        && let Some(to) = original.and_then(fields::original_recipient)
    {
        let mut r = recipient(body, &[], &to, action, true);
        r.address = Some(to);
        recipients.push(r);
    }
    (recipients, body)
}

/// The text before the returned original, and the original's header block when it was pasted
/// as text after a marker line (and has a `To` or `From`).
fn split_original(text: &str) -> (&str, Option<fields::Fields>) {
    let text = prefix(text, 128 * 1024);
    let Some(m) = ORIGINAL_RE.as_ref().and_then(|re| re.find(text)) else {
        return (text, None);
    };
    let rest = text.get(m.end()..).unwrap_or("");
    let rest = rest.split_once('\n').map_or("", |(_, r)| r);
    let block = fields::parse_header_block(rest.trim_start_matches(['\n', '\r', ' ', '\t']));
    let pasted = (block.get("To").is_some() || block.get("From").is_some()).then_some(block);
    (text.get(..m.start()).unwrap_or(text), pasted)
}

pub(crate) fn is_service_address(a: &str) -> bool {
    let local = a.split('@').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "postmaster" | "mail-daemon" | "maildaemon" | "noreply" | "no-reply"
    ) || local.starts_with("b-")
        || local.starts_with("bounce")
        || local.starts_with("owner-")
        || ["-ctl", "-request", "-owner", "-admin", "-bounces"]
            .iter()
            .any(|s| local.ends_with(s))
}

/// (position, address) for every address site in the text.
fn address_sites<'a>(body: &'a str, skip: &dyn Fn(&str) -> bool) -> Vec<(usize, &'a str)> {
    let Some(re) = ADDRESS_RE.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(body)
        .take(4 * MAX_RECIPIENTS)
        .filter_map(|c| {
            let m = c.iter().skip(1).flatten().next()?;
            if c.get(LABELLED_SITE).is_some() && !is_recipient_label(body, m.start()) {
                return None;
            }
            // FML signs its notices "--list@domain, Be Seeing You!".
            let a = m
                .as_str()
                .trim_end_matches(['.', ',', ';', ':'])
                .trim_start_matches('-');
            (!skip(a)).then_some((m.start(), a))
        })
        .collect()
}

/// Exim names an alias's expansion and then "(generated from alias)": the alias is what we
/// addressed, so each expansion is replaced by its alias.
fn without_expansions<'a>(body: &'a str, addresses: Vec<&'a str>) -> Vec<&'a str> {
    let Some(re) = EXPANSION_RE.as_ref() else {
        return addresses;
    };
    let pairs: Vec<(&str, &str)> = re
        .captures_iter(body)
        .take(MAX_RECIPIENTS)
        .filter_map(|c| Some((c.get(1)?.as_str(), c.get(2)?.as_str())))
        .collect();
    let mut out: Vec<&str> = Vec::new();
    for a in addresses {
        let a = pairs
            .iter()
            .find(|(expanded, _)| expanded.eq_ignore_ascii_case(a))
            .map_or(a, |(_, alias)| alias);
        fields::push_distinct(&mut out, a);
    }
    out
}

/// The capture group of the `Label: address` site (the last alternative of [`ADDRESS_SITES`]).
const LABELLED_SITE: usize = 6;

/// `Label: address` lines name the recipient unless the label is a header of the returned
/// original that names somebody else (its sender, its id).
fn is_recipient_label(body: &str, at: usize) -> bool {
    let head = body.get(..at).unwrap_or("");
    let line = head.rsplit('\n').next().unwrap_or(head);
    let label = line
        .trim_end_matches(|c: char| c.is_whitespace() || ":：<".contains(c))
        .trim()
        .to_ascii_lowercase();
    let other = [
        "from",
        "sender",
        "reply-to",
        "return-path",
        "message-id",
        "references",
        "in-reply-to",
        "errors-to",
        "mail from",
        "envelope-from",
        "originator",
        "absender",
        "expéditeur",
        "sender address",
        "from address",
        "envelope sender",
        "return address",
        "sent by",
    ];
    !(other.contains(&label.as_str()) || label.starts_with("x-") || label.starts_with("list-"))
}

fn distinct<'a>(sites: &[(usize, &'a str)]) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for (_, a) in sites {
        fields::push_distinct(&mut seen, *a);
    }
    seen
}

/// Builds the report for `addr`: of the text segments that follow each mention of the address
/// (up to the next mention of another address), the first holding a reply gives the diagnostic.
/// The classifier's context is those segments, or the whole `body` when `sole` (the only
/// recipient the text names).
fn recipient(
    body: &str,
    sites: &[(usize, &str)],
    addr: &str,
    action: &str,
    sole: bool,
) -> RecipientReport {
    let delayed = action == "delayed";
    let mut segments = Vec::new();
    for (i, (pos, a)) in sites.iter().enumerate() {
        if !a.eq_ignore_ascii_case(addr) {
            continue;
        }
        let end = sites
            .iter()
            .skip(i + 1)
            .find(|(_, b)| !b.eq_ignore_ascii_case(addr))
            .map_or(body.len(), |(p, _)| *p);
        segments.push(body.get(*pos..end.max(*pos)).unwrap_or(""));
    }
    if segments.is_empty() {
        segments.push(body);
    }
    let diagnostic = segments
        .iter()
        .find_map(|s| reply_in(s, addr))
        .or_else(|| segments.first().and_then(|s| reason_in(s, addr)));
    let codes = diagnostic.as_deref().map(find_codes).unwrap_or_default();
    let status = codes.enhanced.map(fields::enhanced_string).or_else(|| {
        let d = diagnostic.as_deref().unwrap_or("");
        let code_class = codes.code.map(|c| c / 100);
        let inferred = PHRASE_RES
            .iter()
            .find(|(re, _)| re.is_match(d))
            .map(|(_, s)| *s);
        let permanent = code_class.map_or(!delayed, |c| c == 5);
        inferred.map(|s| match (permanent, s.strip_prefix("5.")) {
            (false, Some(rest)) => format!("4.{rest}"),
            _ => s.to_string(),
        })
    });
    let remote_mta = segments.iter().find_map(|s| remote_mta(s));
    RecipientReport {
        address: Some(addr.to_string()),
        final_recipient: None,
        action: Some(action.to_string()),
        status,
        diagnostic,
        remote_mta,
        context: Some(if sole {
            context(body)
        } else {
            context(&segments.concat())
        }),
    }
}

/// `r` with `reply` as its diagnostic and the status the reply carries.
fn with_diagnostic(mut r: RecipientReport, reply: String, action: &str) -> RecipientReport {
    let codes = find_codes(&reply);
    if let Some(e) = codes.enhanced {
        r.status = Some(fields::enhanced_string(e));
    } else if r.status.is_none() && action != "delayed" {
        r.status = codes
            .code
            .filter(|c| *c >= 500)
            .map(|_| "5.0.0".to_string());
    }
    r.diagnostic = Some(reply);
    r
}

/// The explanation kept for the classifier, bounded and on one line per sentence.
pub(crate) fn context(text: &str) -> String {
    let mut out = String::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_header_line(l))
    {
        if out.len() + line.len() + 1 > MAX_CONTEXT {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A pasted header of the returned original (`Subject: …`): not part of the explanation.
fn is_header_line(line: &str) -> bool {
    const NAMES: &[&str] = &[
        "subject",
        "message-id",
        "date",
        "from",
        "to",
        "cc",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "reply-to",
        "list-unsubscribe",
        "x-cartero-token",
        "sent",
        "references",
        "in-reply-to",
    ];
    line.split_once(':').is_some_and(|(name, _)| {
        let name = name.trim().to_ascii_lowercase();
        NAMES.contains(&name.as_str()) || (name.starts_with("x-") && !name.contains(' '))
    })
}

/// The first reply-looking line and its continuation lines.
fn reply_in(segment: &str, addr: &str) -> Option<String> {
    let m = REPLY_RE.as_ref()?.find(segment)?;
    let mut out = m.as_str().trim().to_string();
    for line in segment.get(m.end()..).unwrap_or("").lines().skip(1).take(6) {
        let folded = line.starts_with([' ', '\t']) && !line.trim().is_empty();
        let t = line.trim_start();
        let is_new_site = t.starts_with(">>>") || (t.starts_with('<') && !t.starts_with("<<<"));
        if !folded || is_new_site || out.len() > 1000 {
            break;
        }
        out.push(' ');
        out.push_str(line.trim());
    }
    let cleaned = clean_reply(&out, addr);
    let label = out.trim_end().ends_with(':') && find_codes(&out).code.is_none();
    if cleaned.len() >= 8 && !label {
        return Some(cleaned);
    }
    // "Remote host said:" and similar labels: the reply is on the lines that follow.
    let following = segment
        .get(m.end()..)
        .unwrap_or("")
        .lines()
        .skip(1)
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    let reply = clean_reply(&following, addr);
    Some(if reply.len() > cleaned.len() {
        reply
    } else {
        cleaned
    })
}

/// Drops what precedes the reply itself: the address the line starts with, `said:`, `<<<`.
fn clean_reply(s: &str, addr: &str) -> String {
    let s = s.trim_start_matches(['<', ' ']).trim();
    let s = match s.split_once(" said: ") {
        Some((_, reply)) => reply,
        None => s
            .strip_prefix(addr)
            .map_or(s, |r| r.trim_start_matches(['>', ':', ' ']).trim()),
    };
    let s = s.strip_prefix("Remote host said:").unwrap_or(s).trim();
    let s = s
        .strip_prefix("(reason:")
        .map_or(s, |r| r.trim_end_matches(')'))
        .trim();
    prefix(s, 1000).to_string()
}

/// Without a reply: the wording next to the address (the rest of its line, else the next lines).
fn reason_in(segment: &str, addr: &str) -> Option<String> {
    let mut lines = segment.lines();
    let first = lines.next().unwrap_or("");
    let rest_of_line = first
        .find(addr)
        .and_then(|i| first.get(i + addr.len()..))
        .unwrap_or("")
        .trim_matches(|c: char| c.is_whitespace() || "<>:'".contains(c));
    let rest_of_line = rest_of_line.trim_start_matches(|c: char| c.is_whitespace() || c == '>');
    // Exchange 2003: "a@b on 1/20/2025 6:16 AM", the reason on the next lines.
    let dated = rest_of_line
        .strip_prefix("on ")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if rest_of_line.len() > 3 && !dated {
        return Some(prefix(rest_of_line, 500).trim().to_string());
    }
    let mut text = String::new();
    // Skip labels such as "because:" and take the wording that follows, up to a blank line.
    let wording = lines
        .map(str::trim)
        .filter(|l| !is_header_line(l))
        .skip_while(|l| l.is_empty() || l.ends_with(':'))
        .take_while(|l| !l.is_empty())
        .take(3);
    for line in wording {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(line);
    }
    let text = text.trim();
    (!text.is_empty()).then(|| prefix(text, 500).to_string())
}

fn remote_mta(segment: &str) -> Option<String> {
    let c = REMOTE_RE.as_ref()?.captures(segment)?;
    let host = (1..=4).find_map(|i| c.get(i))?;
    Some(format!("dns; {}", host.as_str().trim_end_matches('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(FAMILY_RES.len(), FAMILIES.len());
        assert_eq!(PHRASE_RES.len(), PHRASES.len());
        for re in [
            &GENERIC_RE,
            &ORIGINAL_RE,
            &ADDRESS_RE,
            &REPLY_RE,
            &DELAYED_RE,
            &SUCCESS_RE,
            &EXPANSION_RE,
            &REMOTE_RE,
        ] {
            assert!(re.is_some());
        }
    }
}
