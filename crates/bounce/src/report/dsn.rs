//! RFC 3464 per-recipient blocks, completed from the human-readable part where real reports
//! leave them short: a `Final-Recipient` that is a spool path or a pipe, a status part with only
//! `Status: 5.0.0` while the text holds the remote reply, blocks not separated by blank lines.

use super::fields::{self, Fields, find_codes};
use super::mime::Extracted;
use super::{MAX_RECIPIENTS, RecipientReport, text};

/// Fields that start a recipient's block.
const RECIPIENT_FIELDS: [&str; 2] = ["Original-Recipient", "Final-Recipient"];

/// The report's recipients: the delivery-status blocks, completed from the text and from
/// `X-Failed-Recipients`; the text alone when the status part names nobody.
pub(crate) fn recipients(msg: &Extracted) -> Vec<RecipientReport> {
    let mut out = from_blocks(msg);
    let (text, explanation) = text::recipients_in(msg);
    if out.is_empty() {
        return text;
    }
    let named: Vec<String> = out
        .iter()
        .filter_map(|r| r.address.as_deref().map(str::to_ascii_lowercase))
        .collect();
    let mut spare = failed_recipients(msg)
        .into_iter()
        .chain(text.iter().filter_map(|t| t.address.clone()))
        .chain(original_to(msg))
        .filter(|a| !named.contains(&a.to_ascii_lowercase()));
    for r in out.iter_mut().filter(|r| r.address.is_none()) {
        r.address = spare.next();
    }
    let single = out.len() == 1 && text.len() == 1;
    // The whole explanation, for recipients the text does not single out; built once, if needed.
    let mut whole: Option<String> = None;
    for r in &mut out {
        let same = |t: &&RecipientReport| {
            t.address
                .as_deref()
                .zip(r.address.as_deref())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        };
        if let Some(t) = text.iter().find(same).or(text.first().filter(|_| single)) {
            complete(r, t);
        }
        if r.context.is_none() {
            r.context = Some(
                whole
                    .get_or_insert_with(|| text::context(explanation))
                    .clone(),
            );
        }
    }
    out
}

/// Takes the text's diagnostic when the status part gave none with a reason in it, and the
/// text's status when the part's is the generic `X.0.0`.
fn complete(r: &mut RecipientReport, t: &RecipientReport) {
    let weak_diagnostic = r.diagnostic.as_deref().is_none_or(|d| {
        let codes = find_codes(d);
        let words = d.split_whitespace().filter(|w| w.len() > 2).count();
        codes.code.is_none() && codes.enhanced.is_none() && words < 2
    });
    if weak_diagnostic && t.diagnostic.is_some() {
        r.diagnostic = t.diagnostic.clone();
    }
    let generic_status = r
        .status
        .as_deref()
        .is_none_or(|s| s.ends_with(".0.0") || fields::parse_enhanced(s).is_none());
    let text_status = t
        .status
        .as_deref()
        .filter(|s| !s.ends_with(".0.0") && same_class(r.status.as_deref(), s));
    if generic_status && let Some(s) = text_status {
        r.status = Some(s.to_string());
    }
    if r.remote_mta.is_none() {
        r.remote_mta = t.remote_mta.clone();
    }
    if r.context.is_none() {
        r.context = t.context.clone();
    }
}

/// A text status may refine the part's `5.0.0` but not turn a failure into a delay.
fn same_class(part: Option<&str>, text: &str) -> bool {
    part.is_none_or(|p| p.get(..1) == text.get(..1))
}

fn from_blocks(msg: &Extracted) -> Vec<RecipientReport> {
    let mut out = Vec::new();
    for body in &msg.delivery_status {
        // The first block holds per-message fields; a block is a recipient when it names one.
        for block in fields::parse_blocks(body, MAX_RECIPIENTS + 1)
            .into_iter()
            .flat_map(split_recipients)
        {
            if let Some(r) = recipient(&block) {
                out.push(r);
            }
            if out.len() >= MAX_RECIPIENTS {
                return out;
            }
        }
    }
    out
}

/// Splits a block holding several recipients without blank lines between them: a recipient
/// field starts a new recipient when the current one already has it or already has an Action.
fn split_recipients(block: Fields) -> Vec<Fields> {
    let mut parts = vec![Fields::default()];
    for (name, value) in block.0 {
        let starts = RECIPIENT_FIELDS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&name));
        // Only once the current part names a recipient: some MTAs write Action first.
        let current = parts.last().map(|p| {
            let named = RECIPIENT_FIELDS.iter().any(|f| p.get(f).is_some());
            p.get(&name).is_some() || (named && p.get("Action").is_some())
        });
        if starts && current == Some(true) && parts.len() <= MAX_RECIPIENTS {
            parts.push(Fields::default());
        }
        if let Some(p) = parts.last_mut() {
            p.0.push((name, value));
        }
    }
    parts
}

fn recipient(block: &Fields) -> Option<RecipientReport> {
    let original = block
        .get("Original-Recipient")
        .and_then(fields::typed_address);
    let final_rcpt = block.get("Final-Recipient").and_then(fields::typed_address);
    let named = block.get("Original-Recipient").is_some() || block.get("Final-Recipient").is_some();
    if !named && block.get("Action").is_none() {
        return None;
    }
    let address = original.clone().or_else(|| final_rcpt.clone());
    Some(RecipientReport {
        final_recipient: final_rcpt.filter(|f| Some(f) != address.as_ref()),
        address,
        action: block.get("Action").map(action_word),
        status: block.get("Status").map(|s| {
            fields::parse_enhanced(s).map_or_else(|| s.to_string(), fields::enhanced_string)
        }),
        diagnostic: block.get_owned("Diagnostic-Code"),
        remote_mta: block.get_owned("Remote-MTA"),
        context: None,
    })
}

/// `Delivered (to mailbox)` → `delivered`: some MTAs comment the action.
fn action_word(a: &str) -> String {
    a.split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or(a)
        .to_ascii_lowercase()
}

/// `X-Failed-Recipients` (Exim, Google Groups): comma-separated addresses.
pub(crate) fn failed_recipients(msg: &Extracted) -> Vec<String> {
    msg.top
        .0
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("X-Failed-Recipients"))
        .flat_map(|(_, v)| v.split([',', ' ', ';']))
        .filter_map(fields::header_address)
        .take(MAX_RECIPIENTS)
        .collect()
}

fn original_to(msg: &Extracted) -> Option<String> {
    msg.original
        .as_ref()
        .and_then(|o| o.get("To"))
        .and_then(fields::header_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_without_blank_lines_are_split() {
        let block = fields::parse_blocks(
            "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\
             Final-Recipient: rfc822; b@example.org\nAction: failed\nStatus: 5.2.2\n\
             Original-Recipient: rfc822; c@example.org\nFinal-Recipient: rfc822; c2@example.org\nAction: delayed\n",
            4,
        );
        let parts: Vec<Fields> = block.into_iter().flat_map(split_recipients).collect();
        let got: Vec<_> = parts.iter().filter_map(recipient).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].status.as_deref(), Some("5.2.2"));
        assert_eq!(got[2].address.as_deref(), Some("c@example.org"));
        assert_eq!(got[2].final_recipient.as_deref(), Some("c2@example.org"));
    }

    #[test]
    fn commented_actions_keep_their_word() {
        assert_eq!(action_word("Delivered (to mailbox)"), "delivered");
        assert_eq!(action_word(" relayed; via gateway"), "relayed");
    }
}
