//! Reports a receiving site sends back about a message cartero delivered with inMail on: a DSN
//! to its VERP return path and an ARF complaint to the feedback-loop mailbox. Both name the
//! recipient and carry the message's token the way real reports return the original headers.

/// A delivery status notification (RFC 3464): `550 5.1.1` user unknown for `rcpt`, returned
/// to `b-<token>@bounces.test`.
pub fn dsn(rcpt: &str, token: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.dest.test>\r\n\
To: <b-{token}@bounces.test>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n\
--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; mx.dest.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: user unknown\r\n\r\n\
--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Cartero-Token: {token}\r\n\
From: a@src.test\r\nSubject: hello\r\n\r\n--BB--\r\n"
    )
}

/// An abuse report (RFC 5965) from `feedback@isp.test` to `fbl@bounces.test` about the message
/// with `token` delivered to `rcpt`.
pub fn arf(rcpt: &str, token: &str) -> String {
    format!(
        "From: feedback@isp.test\r\nTo: fbl@bounces.test\r\nSubject: complaint\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;\r\n\
\tboundary=\"FB\"\r\n\r\n--FB\r\nContent-Type: text/plain\r\n\r\nA user complained.\r\n\r\n\
--FB\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
User-Agent: isp-fbl/2.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n\
--FB\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@src.test\r\nTo: {rcpt}\r\n\
X-Cartero-Token: {token}\r\nSubject: hello\r\n\r\nHi\r\n\r\n--FB--\r\n"
    )
}
