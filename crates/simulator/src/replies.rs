//! Reply wording per provider style. The texts are our own; only their shape (codes, tags,
//! the source IP in the text) imitates what senders meet in the field.

use std::net::IpAddr;

use cartero_smtp::reply::{EnhancedCode, Reply};

use crate::scenario::Style;

/// The situations that get a non-2xx reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many connections at once from the source.
    Connections,
    /// Too many messages per second or minute from the source.
    Rate,
    /// The source's reputation is at the bottom.
    Blocked,
    /// First attempt of a triple.
    Greylisted,
    /// The recipient does not exist.
    UnknownUser,
    /// The recipient's mailbox is full.
    MailboxFull,
    /// A random transient failure.
    Random,
}

/// The reply for `refusal` in `style`, mentioning the source `ip` where the style does.
pub(crate) fn refusal(style: Style, refusal: Refusal, ip: IpAddr) -> Reply {
    let (code, enhanced) = codes(style, refusal);
    Reply::new(
        code,
        enhanced.map(|(a, b, c)| EnhancedCode::new(a, b, c)),
        text(style, refusal, ip),
    )
}

/// Reply code and enhanced code. The big providers' styles use the codes most of the field
/// uses; the ISP styles use others seen in the wild for the same situations (RFC 3463 4.3.x
/// "system" codes for load, none at all from a terse server).
fn codes(style: Style, refusal: Refusal) -> (u16, Option<(u8, u16, u16)>) {
    use Refusal as R;
    match (style, refusal) {
        (Style::FrenchIsp, R::Connections) | (Style::Terse, R::Connections) => (421, None),
        (Style::FrenchIsp, R::Rate) => (450, Some((4, 7, 1))),
        (Style::GermanIsp, R::Connections) => (421, Some((4, 3, 2))),
        (Style::GermanIsp, R::Rate) => (452, Some((4, 3, 1))),
        (Style::Terse, R::Rate) | (Style::Terse, R::Random) => (451, None),
        (Style::Terse, R::Greylisted) => (450, None),
        (_, R::Connections) => (421, Some((4, 7, 0))),
        (_, R::Rate | R::Greylisted) => (451, Some((4, 7, 1))),
        (_, R::Blocked) => (554, Some((5, 7, 1))),
        (_, R::UnknownUser) => (550, Some((5, 1, 1))),
        (_, R::MailboxFull) => (452, Some((4, 2, 2))),
        (_, R::Random) => (451, Some((4, 3, 0))),
    }
}

fn text(style: Style, refusal: Refusal, ip: IpAddr) -> String {
    use Refusal as R;
    match (style, refusal) {
        (Style::Gmail, R::Connections) => {
            "Try again later, closing connection. Too many open sessions from your IP - gsmtp-sim"
                .into()
        }
        (Style::Gmail, R::Rate) => format!(
            "Our system sees an unusual rate of mail from {ip}; you are rate limited, try again later - gsmtp-sim"
        ),
        (Style::Gmail, R::Blocked) => format!(
            "Messages from {ip} are blocked for a while because of poor sending reputation - gsmtp-sim"
        ),
        (Style::Gmail, R::Greylisted) => {
            "Greylisted, please try again in a few minutes - gsmtp-sim".into()
        }
        (Style::Gmail, R::UnknownUser) => {
            "The email account that you tried to reach does not exist - gsmtp-sim".into()
        }
        (Style::Gmail, R::MailboxFull) => {
            "The recipient's inbox is out of storage space, try again later - gsmtp-sim".into()
        }
        (Style::Yahoo, R::Connections) => {
            format!(
                "[TSS-SIM] Too many concurrent connections from {ip}; try again later, closing connection"
            )
        }
        (Style::Yahoo, R::Rate) => {
            format!(
                "[TSS-SIM] Messages from {ip} temporarily deferred: rate limited for unexpected volume"
            )
        }
        (Style::Yahoo, R::Blocked) => {
            format!(
                "[TSP-SIM] Messages from {ip} permanently deferred; blocked for poor reputation"
            )
        }
        (Style::Outlook, R::Connections) => {
            format!("Try again later, closing connection. Too many connections from [{ip}] (S-SIM)")
        }
        (Style::Outlook, R::Rate) => {
            format!("The mail server [{ip}] has been temporarily rate limited (S-SIM)")
        }
        (Style::Outlook, R::Blocked) => {
            format!("Service unavailable, client host [{ip}] blocked by reputation policy (S-SIM)")
        }
        (Style::FrenchIsp, R::Connections) => {
            format!("Trop de connexions simultanees depuis {ip}, merci de reessayer plus tard")
        }
        (Style::FrenchIsp, R::Rate) => {
            format!("Debit d'envoi trop eleve depuis {ip}, reessayez plus tard")
        }
        (Style::FrenchIsp, R::Greylisted) => {
            "Adresse mise en liste grise, reessayez dans quelques minutes".into()
        }
        (Style::GermanIsp, R::Connections) => {
            format!("Zu viele gleichzeitige Verbindungen von {ip}, bitte spaeter erneut versuchen")
        }
        (Style::GermanIsp, R::Rate) => {
            format!("Sendevolumen von {ip} ueberschritten, bitte spaeter erneut versuchen")
        }
        (Style::Terse, R::Connections) => {
            "Service not available, closing transmission channel".into()
        }
        (Style::Terse, R::Rate | R::Random) => {
            "Requested action aborted: local error in processing".into()
        }
        (Style::Terse, R::Greylisted) => "Requested mail action not taken: try later".into(),
        (_, R::Connections) => "Try again later, closing connection".into(),
        (_, R::Rate) => format!("Too many messages from {ip}, rate limited, try again later"),
        (_, R::Blocked) => format!("Client host {ip} blocked for poor reputation"),
        (_, R::Greylisted) => "Greylisted, try again later".into(),
        (_, R::UnknownUser) => "Recipient address rejected: user unknown".into(),
        (_, R::MailboxFull) => "Mailbox full, try again later".into(),
        (_, R::Random) => "Temporary system problem, try again later".into(),
    }
}
