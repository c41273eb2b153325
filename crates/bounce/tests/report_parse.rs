//! Specific behaviours of the report readers, on hand-written messages.

use cartero_bounce::{
    BounceClass, CodeClassifier, FailureType, Outcome, Reason, ReportKind, classify_report,
    parse_report,
};

const MULTI: &str = "From: MAILER-DAEMON@mx.example\r\nTo: b-envtoken.1@bounces.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
Final-Recipient: rfc822; alias@forward.example\r\nOriginal-Recipient: rfc822;Bob@Example.org\r\n\
Action: Failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.forward.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <alias@forward.example>: Recipient address\r\n    rejected: User unknown\r\n\r\n\
Final-Recipient: rfc822; carol@example.net\r\nAction: delayed\r\nStatus: 4.2.2\r\n\
Diagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n\
Final-Recipient: rfc822; dan@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
--B\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <orig.1@shop.example>\r\nX-Cartero-Token: hdrtoken.2\r\n\
To: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n--B--\r\n";

#[test]
fn dsn_recipients_fields_and_outcomes() {
    let r = parse_report(MULTI.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::Dsn);
    assert_eq!(r.recipients.len(), 3);
    let bob = &r.recipients[0];
    assert_eq!(bob.address.as_deref(), Some("Bob@Example.org"));
    assert_eq!(
        bob.final_recipient.as_deref(),
        Some("alias@forward.example")
    );
    assert_eq!(bob.action.as_deref(), Some("failed"));
    assert_eq!(bob.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        bob.diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 <alias@forward.example>: Recipient address rejected: User unknown")
    );
    assert_eq!(bob.remote_mta.as_deref(), Some("dns; mx.forward.example"));
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("orig.1@shop.example")
    );
    // The returned original's header wins over the envelope address.
    assert_eq!(r.token.as_deref(), Some("hdrtoken.2"));
    assert_eq!(r.auto_submitted.as_deref(), Some("auto-replied"));

    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c[0].outcome, Outcome::OutOfBand);
    assert_eq!(c[0].class, Some(BounceClass::INVALID_RECIPIENT));
    let q = c[0].qualification.unwrap();
    assert_eq!(
        (q.r#type, q.reason),
        (FailureType::Hard, Reason::UserUnknown)
    );
    assert_eq!(c[1].outcome, Outcome::Delay);
    assert_eq!(c[1].class, Some(BounceClass::MAILBOX_FULL));
    assert_eq!(c[2].outcome, Outcome::NoFailure);
    assert_eq!((c[2].class, c[2].qualification), (None, None));
}

#[test]
fn token_falls_back_to_the_return_path_address() {
    let raw = MULTI.replace("X-Cartero-Token: hdrtoken.2\r\n", "");
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.token.as_deref(), Some("envtoken.1"));
}

#[test]
fn a_delay_notice_never_gets_a_hard_class() {
    let raw = MULTI.replace("Action: Failed", "Action: delayed");
    let r = parse_report(raw.as_bytes()).unwrap();
    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c[0].outcome, Outcome::Delay);
    assert_ne!(
        c[0].class.unwrap().category(),
        cartero_bounce::Category::Hard
    );
}

#[test]
fn auto_replies_are_class_60_and_ignored_never_hard() {
    let raw = "From: Jane <jane@example.org>\r\nTo: b-t.1@bounces.example\r\nSubject: Out of Office: hi\r\n\
Auto-Submitted: auto-replied\r\n\r\nI am away. User unknown.\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::AutoReply);
    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].report.address.as_deref(), Some("jane@example.org"));
    assert_eq!(c[0].class, Some(BounceClass::AUTO_REPLY));
    assert_eq!(c[0].qualification.unwrap().r#type, FailureType::Ignored);
}

#[test]
fn auto_submitted_no_is_not_an_auto_reply() {
    let raw =
        "From: Jane <jane@example.org>\r\nSubject: hello\r\nAuto-Submitted: no\r\n\r\nHi!\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(classify_report(&r, &CodeClassifier::new()).is_empty());
}

#[test]
fn challenge_response_is_class_100() {
    let raw = "From: Joe <joe@example.org>\r\nSubject: Please confirm your message\r\n\r\n\
Please verify you are human by clicking the link below.\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::ChallengeResponse);
    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c[0].class, Some(BounceClass::CHALLENGE_RESPONSE));
}

#[test]
fn arf_fields_and_complaint_path() {
    let raw = "From: fbl@isp.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
--F\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\
--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: Abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n\
Original-Mail-From: <b-arftok.9@bounces.example>\r\nOriginal-Rcpt-To: <eve@example.net>\r\n\
Arrival-Date: Thu, 8 Mar 2025 14:00:00 +0000\r\nSource-IP: 192.0.2.1\r\nReported-Domain: shop.example\r\n\r\n\
--F\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m.1@shop.example>\r\nTo: eve@example.net\r\n\r\n--F--\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::Arf);
    let arf = r.arf.clone().unwrap();
    assert_eq!(arf.feedback_type.as_deref(), Some("abuse"));
    assert_eq!(arf.user_agent.as_deref(), Some("FBL/1.0"));
    assert_eq!(arf.original_rcpt_to.as_deref(), Some("eve@example.net"));
    assert_eq!(arf.source_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(arf.reported_domain.as_deref(), Some("shop.example"));
    assert_eq!(r.token.as_deref(), Some("arftok.9"));
    assert_eq!(r.original_message_id.as_deref(), Some("m.1@shop.example"));
    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c[0].outcome, Outcome::Complaint);
    assert_eq!(c[0].class, None);
    let q = c[0].qualification.unwrap();
    assert_eq!(
        (q.r#type, q.reason),
        (FailureType::Hard, Reason::Denylisted)
    );
}

#[test]
fn text_bounce_with_two_recipients_keeps_each_diagnostic() {
    let raw = "From: MAILER-DAEMON@mx.example\r\nSubject: failure notice\r\n\r\n\
Hi. This is the qmail-send program at mx.example.\r\n\r\n<a@one.example>:\r\nRemote host said: 550 5.1.1 no such user\r\n\r\n\
<b@two.example>:\r\nRemote host said: 552 5.2.2 mailbox full\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n\
Message-ID: <x.1@shop.example>\r\nTo: a@one.example\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::NonStandardBounce { family: "qmail" });
    let c = classify_report(&r, &CodeClassifier::new());
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].report.status.as_deref(), Some("5.1.1"));
    assert_eq!(c[1].report.status.as_deref(), Some("5.2.2"));
    assert_eq!(c[1].class, Some(BounceClass::MAILBOX_FULL));
    assert_eq!(r.original_message_id.as_deref(), Some("x.1@shop.example"));
}

#[test]
fn a_plain_message_is_unknown_and_yields_nothing() {
    let raw = "From: a@b.example\r\nSubject: lunch?\r\n\r\nAre you free at noon? Write to c@d.example\r\n";
    let r = parse_report(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, ReportKind::Unknown);
    assert!(r.recipients.is_empty());
}
