//! Behaviours added after real-world bounces were seen to defeat the readers (issue 12): each
//! test is named after the layout it pins, on a hand-written message.

use cartero_bounce::{
    BounceClass, Outcome, ReportKind, classify_report, default_classifier, parse_report,
};

fn classes(raw: &[u8]) -> Vec<(Option<String>, Outcome, Option<u16>)> {
    let r = parse_report(raw).unwrap();
    classify_report(&r, default_classifier().as_ref())
        .into_iter()
        .map(|c| (c.report.address, c.outcome, c.class.map(|c| c.0)))
        .collect()
}

fn dsn(status_fields: &str, human: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: b-tok.1@bounces.example\r\nSubject: Undeliverable\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\n{human}\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n{status_fields}\r\n\
--B--\r\n"
    )
}

#[test]
fn a_status_5_0_0_without_diagnostic_takes_the_reply_from_the_text() {
    let raw = dsn(
        "Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n",
        "Delivery to the following recipient failed permanently:\r\n\r\n  ann@example.org\r\n\r\n\
The remote server said:\r\n552 5.2.2 The email account that you tried to reach is over quota.",
    );
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.2.2"));
    assert_eq!(
        classes(raw.as_bytes()),
        vec![(Some("ann@example.org".into()), Outcome::OutOfBand, Some(22))]
    );
}

#[test]
fn a_final_recipient_that_is_a_spool_path_falls_back_to_x_failed_recipients() {
    let raw = dsn(
        "Final-Recipient: X-Unix; /var/spool/mail/ben\r\nAction: failed\r\nStatus: 5.2.2\r\n",
        "mailbox is full",
    )
    .replace(
        "Subject: Undeliverable\r\n",
        "Subject: Undeliverable\r\nX-Failed-Recipients: ben@example.org\r\n",
    );
    assert_eq!(
        classes(raw.as_bytes()),
        vec![(Some("ben@example.org".into()), Outcome::OutOfBand, Some(22))]
    );
}

#[test]
fn recipient_blocks_without_blank_lines_are_two_recipients() {
    let raw = dsn(
        "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n",
        "Delivery failed.",
    );
    let got = classes(raw.as_bytes());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].2, Some(10));
    assert_eq!(
        got[1],
        (Some("b@example.org".into()), Outcome::OutOfBand, Some(22))
    );
}

#[test]
fn success_dsns_never_fail_a_recipient_even_with_a_commented_action() {
    for action in [
        "delivered (to mailbox)",
        "Relayed",
        "expanded; to 3 recipients",
    ] {
        let raw = dsn(
            &format!(
                "Final-Recipient: rfc822; c@example.org\r\nAction: {action}\r\nStatus: 2.0.0\r\n"
            ),
            "Your message was delivered.",
        );
        let got = classes(raw.as_bytes());
        assert_eq!(got.len(), 1, "{action}");
        assert_eq!(got[0].1, Outcome::NoFailure, "{action}");
        assert_eq!(got[0].2, None, "{action}");
    }
}

#[test]
fn the_reply_on_the_line_after_remote_host_said_is_read() {
    let raw = "From: MAILER-DAEMON@mx.example.net\r\nSubject: failure notice\r\n\r\n\
Hi. This is the qmail-send program at mx.example.net.\r\n\r\n<dan@example.org>:\r\n\
203.0.113.5 does not like recipient.\r\nRemote host said:\r\n550 5.1.1 <dan@example.org>: no such user here\r\n\
Giving up on 203.0.113.5.\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    let diag = r.recipients[0].diagnostic.clone().unwrap_or_default();
    assert!(diag.contains("550 5.1.1"), "{diag}");
    assert_eq!(classes(raw.as_bytes())[0].2, Some(10));
}

#[test]
fn arf_with_several_original_rcpt_to_reports_each_recipient() {
    let raw = "From: fbl@isp.example\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: fbl/1\r\nVersion: 1\r\n\
Original-Rcpt-To: <e1@example.org>\r\nOriginal-Rcpt-To: <e2@example.org>\r\n\r\n--F--\r\n";
    let got = classes(raw.as_bytes());
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| g.1 == Outcome::Complaint));
    let removal = raw.replace(
        "Original-Rcpt-To: <e1@example.org>\r\nOriginal-Rcpt-To: <e2@example.org>",
        "Removal-Recipient: f@example.org",
    );
    assert_eq!(
        classes(removal.as_bytes()),
        vec![(Some("f@example.org".into()), Outcome::Complaint, None)]
    );
}

#[test]
fn a_mailer_daemon_message_is_never_an_auto_reply() {
    let raw = "From: MAILER-DAEMON@mx.example.net\r\nAuto-Submitted: auto-replied\r\nSubject: hello\r\n\r\n\
550 malformed address\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_ne!(r.kind, ReportKind::AutoReply);
    assert!(classes(raw.as_bytes()).iter().all(|c| c.2 != Some(60)));
}

#[test]
fn x_failed_recipients_names_the_recipient_of_a_non_english_google_groups_bounce() {
    let raw = "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n\
X-Failed-Recipients: grp@example.org\r\nSubject: Unzustellbar\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\
Ihre Nachricht konnte nicht zugestellt werden. Die Gruppe existiert nicht oder Sie haben keine Berechtigung.\r\n";
    let got = classes(raw.as_bytes());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_deref(), Some("grp@example.org"));
}

#[test]
fn iso_2022_jp_text_is_decoded_before_matching() {
    let mut raw = b"From: MAILER-DAEMON@mx.example.net\r\nSubject: =?ISO-2022-JP?B?GyRCJV4lJCVrJEckLUckJEckLSReJDsk8yQ3JD8bKEI=?=\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n<gin@example.org>: 550 5.1.1 "
        .to_vec();
    // "unknown user" in Japanese, ISO-2022-JP: 存在しないユーザです
    raw.extend_from_slice(b"\x1b$BB8:_$7$J$$%f!<%6$G$9\x1b(B\r\n");
    let r = parse_report(&raw).unwrap();
    assert!(
        r.subject
            .as_deref()
            .is_some_and(|s| !s.contains('\u{1b}') && !s.contains("=?")),
        "{:?}",
        r.subject
    );
    let diag = r.recipients[0].diagnostic.clone().unwrap_or_default();
    assert!(diag.contains("ユーザ"), "{diag}");
    assert_eq!(classes(&raw)[0].2, Some(BounceClass::INVALID_RECIPIENT.0));
}

#[test]
fn two_bounces_in_one_mbox_file_report_both_recipients() {
    let one = "From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\n\
Hi. This is the qmail-send program at mx.example.net.\n\n<h1@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n";
    let two = one.replace("h1@", "h2@").replace(
        "no mailbox here by that name. (#5.1.1)",
        "552 5.2.2 mailbox full",
    );
    let raw = format!(
        "From MAILER-DAEMON Thu Dec  3 10:00:00 2026\n{one}\nFrom MAILER-DAEMON Thu Dec  3 10:05:00 2026\n{two}"
    );
    let got = classes(raw.as_bytes());
    assert_eq!(
        got,
        vec![
            (Some("h1@example.org".into()), Outcome::OutOfBand, Some(10)),
            (Some("h2@example.org".into()), Outcome::OutOfBand, Some(22)),
        ]
    );
}
