//! Reply wording per provider style. The texts are our own; only their shape (codes, tags,
//! the source IP in the text) imitates what senders meet in the field.

use std::net::IpAddr;

use cartero_smtp::reply::Reply;

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
    let (code, enhanced) = match refusal {
        Refusal::Connections => (421, (4, 7, 0)),
        Refusal::Rate | Refusal::Greylisted => (451, (4, 7, 1)),
        Refusal::Blocked => (554, (5, 7, 1)),
        Refusal::UnknownUser => (550, (5, 1, 1)),
        Refusal::MailboxFull => (452, (4, 2, 2)),
        Refusal::Random => (451, (4, 3, 0)),
    };
    Reply::with_code(code, enhanced, text(style, refusal, ip))
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
        (_, R::Connections) => "Try again later, closing connection".into(),
        (_, R::Rate) => format!("Too many messages from {ip}, rate limited, try again later"),
        (_, R::Blocked) => format!("Client host {ip} blocked for poor reputation"),
        (_, R::Greylisted) => "Greylisted, try again later".into(),
        (_, R::UnknownUser) => "Recipient address rejected: user unknown".into(),
        (_, R::MailboxFull) => "Mailbox full, try again later".into(),
        (_, R::Random) => "Temporary system problem, try again later".into(),
    }
}
