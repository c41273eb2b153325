//! Auto-replies (RFC 3834 and the older vendor headers, vacation subjects) and
//! challenge-response messages.

use super::RecipientReport;
use super::mime::Extracted;
use regex::Regex;
use std::sync::LazyLock;

/// Subjects of vacation / out-of-office replies, in the languages our senders meet most.
const AUTO_SUBJECT: &str = r"(?i)\b(respuesta|risposta|resposta|r[ée]ponse) autom[aá]tic|automatische antwort|\b(auto(matic|matische|matique)?[ -]?(reply|response|respuesta|antwort|réponse|reponse|risposta|resposta))\b|\bautoreply\b|\bout of (the )?office\b|\bvacation\b|\bon holiday\b|\bon leave\b|\babsence\b|\babwesenheit|\babwesend\b|\bfuera de la oficina\b|\bausente\b|\bcongés?\b|\bfuori sede\b|\bfuori ufficio\b|\bniet aanwezig\b|\bafwezig\b|\bfrånvaro|\bpoza biurem\b|\bnieobecno|\bgeen toegang\b|\bi am away\b|\bi'?m away\b|\baway from (the )?office\b";

/// Wording of challenge-response systems (the sender must confirm before delivery).
const CR_TEXT: &str = r"(?i)please (verify|confirm) (that )?you are (a )?human|verify (that )?you are (a )?(real )?(person|human)|(complete|click|follow) .{0,40}(verification|confirmation) (link|process|request|page)|your (e-?mail|message) (is|has been) (held|quarantined|pending) (until|for) .{0,30}(verif|confirm)|i use .{0,40}(spam ?arrest|boxbe|mailblocks|challenge[ -]response)|sender verification (request|required)|(approve|authenticate) yourself as a sender|add you to my (list of )?(approved|allowed) senders|(dass|daß) Sie ein Mensch sind|Bestätigungsverfahren|bestätigen Sie (einmalig|bitte|Ihre)|que vous (êtes|etes) (un )?(humain|une personne)|confirm(ez|er) (votre|que vous)|que eres (un )?humano|confirme que (usted )?es|você é (um )?humano|confirme que você";

/// Subjects and sender names of known challenge-response services.
const CR_SUBJECT: &str = r"(?i)\b(spam ?arrest|boxbe|mailblocks|choicemail|sendio|bluebottle|qurb|mailsnare)\b|please confirm your (e-?mail|message)|verification (required|request|needed)|sender verification|confirm you are (a )?human|action required: verify|authenticate your (e-?mail|message)|\[?challenge\]?";

static AUTO_SUBJECT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(AUTO_SUBJECT).ok());
static CR_TEXT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(CR_TEXT).ok());
static CR_SUBJECT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(CR_SUBJECT).ok());

fn matches(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(text))
}

/// RFC 3834 `Auto-Submitted` (anything but `no`), `X-Autoreply`, `X-Autorespond`, `X-Vacation`,
/// `Precedence: auto_reply`, or a vacation / out-of-office subject.
pub(crate) fn is_auto_reply(msg: &Extracted) -> bool {
    let top = &msg.top;
    let auto_submitted = top
        .get("Auto-Submitted")
        .is_some_and(|v| !v.to_ascii_lowercase().starts_with("no"));
    let vendor = top.get("X-Autoreply").is_some()
        || top.get("X-Autorespond").is_some()
        || top.get("X-Autoresponder").is_some()
        || top.get("X-Vacation").is_some()
        || top
            .get("X-MS-Exchange-Inbox-Rules-Loop")
            .is_some_and(|_| subject_is_auto(msg))
        || top.get("X-Precedence").is_some_and(is_auto_precedence)
        || top.get("Precedence").is_some_and(is_auto_precedence);
    auto_submitted || vendor || subject_is_auto(msg)
}

fn is_auto_precedence(v: &str) -> bool {
    let v = v.to_ascii_lowercase();
    v.contains("auto_reply") || v.contains("auto-reply") || v.contains("autoreply")
}

fn subject_is_auto(msg: &Extracted) -> bool {
    msg.subject
        .as_deref()
        .is_some_and(|s| matches(&AUTO_SUBJECT_RE, s))
}

/// Known challenge-response subjects or senders, or challenge wording in the text.
pub(crate) fn is_challenge_response(msg: &Extracted) -> bool {
    let subject = msg.subject.as_deref().unwrap_or("");
    let from = msg.top.get("From").unwrap_or("");
    matches(&CR_SUBJECT_RE, subject)
        || matches(&CR_SUBJECT_RE, from)
        || matches(
            &CR_TEXT_RE,
            msg.text.get(..msg.text.len().min(16 * 1024)).unwrap_or(""),
        )
}

/// An auto-reply or challenge comes from the recipient we wrote to: its From.
pub(crate) fn sender_as_recipient(msg: &Extracted) -> Vec<RecipientReport> {
    vec![RecipientReport {
        address: msg.from.clone(),
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(AUTO_SUBJECT_RE.is_some());
        assert!(CR_TEXT_RE.is_some());
        assert!(CR_SUBJECT_RE.is_some());
    }
}
