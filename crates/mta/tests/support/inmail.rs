//! Shared pieces of the inMail tests: the configuration, reports built from what the sink
//! captured (a DSN, an ARF complaint) and an SMTP client that sends them to the bounce domain.

use super::{Env, RawClient, SinkMessage, WAIT};
use cartero_events::EventType;
use cartero_mta::MtaConfig;
use cartero_mta::config::InboundRule;
use cartero_mta::inmail::TokenKey;

pub const BOUNCES: &str = "bounces.test";

pub fn inmail_config(c: &mut MtaConfig) {
    // The test client (127.0.0.1) is not allowed to relay: bounces must still get in.
    c.smtp.relay_networks = vec![];
    c.inmail.bounce_domains = vec![BOUNCES.into()];
    c.inmail.list_unsubscribe.url_base = "https://mail.origin.test".into();
    c.inmail.rules = vec![InboundRule {
        name: "disabled-account".into(),
        pattern: "(?i)account .*disabled".into(),
        r#type: cartero_bounce::FailureType::Hard,
        reason: cartero_bounce::Reason::AccountDisabled,
    }];
}

pub fn key(env: &Env) -> TokenKey {
    let secret = std::fs::read(env.cfg.data_dir.join("inmail-secret")).unwrap();
    TokenKey::new(secret.trim_ascii())
}

/// The value of header `name` in the captured message.
pub fn header(m: &SinkMessage, name: &str) -> Option<String> {
    let text = m.text();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Injects a bulk message to `to` and returns what the sink received.
pub async fn deliver(env: &mut Env, to: &str) -> (String, SinkMessage) {
    let before = env.sink.messages().len();
    let done = env
        .inject_with(&[to], |i| {
            i.metadata.insert("bulk".into(), true.into());
        })
        .await;
    env.events.wait_rcpt(EventType::Delivery, to).await;
    let msgs = env.sink.wait_messages(before + 1, WAIT).await;
    let m = msgs
        .into_iter()
        .find(|m| m.recipients == [to.to_string()])
        .unwrap();
    (done.message_id, m)
}

pub fn dsn(rcpt: &str, token: &str, diagnostic: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n\
To: <b-{token}@{BOUNCES}>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"XX\"\r\n\r\n\
--XX\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
--XX\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\n\
Status: 5.1.1\r\nRemote-MTA: dns; mx.example.test\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n\
--XX\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: sender@origin.test\r\n\
X-Cartero-Token: {token}\r\nSubject: test\r\n\r\n--XX--\r\n"
    )
}

pub fn arf(rcpt: &str, token: &str) -> String {
    arf_from(rcpt, token, "192.0.2.10")
}

/// An ARF report whose Source-IP (the IP that delivered the reported message) is `source_ip`.
pub fn arf_from(rcpt: &str, token: &str, source_ip: &str) -> String {
    format!(
        "From: feedback@isp.example\r\nTo: fbl@{BOUNCES}\r\nSubject: FW: abuse report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;\r\n\
\tboundary=\"AR\"\r\n\r\n--AR\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\r\n\
--AR\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
User-Agent: isp-fbl/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\nSource-IP: {source_ip}\r\n\r\n\
--AR\r\nContent-Type: message/rfc822\r\n\r\nFrom: sender@origin.test\r\nTo: {rcpt}\r\n\
X-Cartero-Token: {token}\r\nSubject: test\r\n\r\nHello\r\n\r\n--AR--\r\n"
    )
}

/// One SMTP transaction with the null sender; returns the final reply text.
pub async fn send(c: &mut RawClient<tokio::net::TcpStream>, rcpt: &str, data: &str) -> String {
    send_from(c, "", rcpt, data).await
}

/// One SMTP transaction from envelope sender `sender`; returns the final reply text.
pub async fn send_from(
    c: &mut RawClient<tokio::net::TcpStream>,
    sender: &str,
    rcpt: &str,
    data: &str,
) -> String {
    let m = c.cmd(&format!("MAIL FROM:<{sender}>")).await.unwrap();
    assert_eq!(m.code, 250, "{m}");
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await.unwrap();
    assert_eq!(r.code, 250, "RCPT {rcpt}: {r}");
    let d = c.cmd("DATA").await.unwrap();
    assert_eq!(d.code, 354, "{d}");
    c.send_raw(format!("{data}.\r\n").as_bytes()).await.unwrap();
    c.reply().await.unwrap().to_string()
}

pub fn forge(token: &str) -> String {
    let mut b = token.as_bytes().to_vec();
    b[5] = if b[5] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}
