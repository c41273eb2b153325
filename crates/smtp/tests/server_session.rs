//! Server session: commands, sequencing and the transaction, through the public API.

mod server_support;

use cartero_smtp::Reply;
use cartero_smtp::server::{Event, ServerConfig, Session};
use server_support::{Harness, Received, cfg};

#[test]
fn greeting_and_ehlo_capabilities_in_clear_text() {
    let mut h = Harness::new(cfg(), false);
    assert_eq!(
        h.session.greeting().to_string(),
        "220 mx.test ESMTP cartero"
    );
    h.session.feed(b"EHLO client.test\r\n");
    assert_eq!(
        h.session.next_event(),
        Event::Helo {
            name: "client.test".into(),
            extended: true
        }
    );
    let wire = String::from_utf8(h.session.accept().to_wire()).unwrap();
    assert_eq!(
        wire,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
    );
    assert_eq!(h.session.helo_name(), Some("client.test"));
}

#[test]
fn ehlo_capabilities_follow_tls_and_config() {
    let mut tls = Harness::new(cfg(), true);
    let caps = tls.send(b"EHLO c.test\r\n").join("|");
    assert!(
        caps.contains("AUTH PLAIN LOGIN") && !caps.contains("STARTTLS"),
        "{caps}"
    );

    let plain_auth = ServerConfig {
        auth_requires_tls: false,
        chunking: false,
        smtputf8: false,
        ..cfg()
    };
    let caps = Harness::new(plain_auth, false)
        .send(b"EHLO c.test\r\n")
        .join("|");
    assert!(
        caps.contains("AUTH PLAIN LOGIN") && caps.contains("STARTTLS"),
        "{caps}"
    );
    assert!(
        !caps.contains("CHUNKING") && !caps.contains("SMTPUTF8"),
        "{caps}"
    );

    let bare = ServerConfig {
        starttls: false,
        auth: false,
        ..cfg()
    };
    let caps = Harness::new(bare, true).send(b"EHLO c.test\r\n").join("|");
    assert!(
        !caps.contains("AUTH") && !caps.contains("STARTTLS"),
        "{caps}"
    );
}

#[test]
fn helo_reply_is_plain_250() {
    let mut h = Harness::new(cfg(), false);
    assert_eq!(h.send(b"HELO c.test\r\n"), ["250 mx.test"]);
}

#[test]
fn full_transaction_delivers_exact_message() {
    let mut h = Harness::ready();
    let replies =
        h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRCPT TO:<z@y.test>\r\nDATA\r\n");
    assert_eq!(
        replies,
        [
            "250 2.1.0 Sender ok",
            "250 2.1.5 Recipient ok",
            "250 2.1.5 Recipient ok",
            "354 End data with <CR><LF>.<CR><LF>"
        ]
    );
    assert_eq!(
        h.send(b"Subject: hi\r\n\r\n..dot\r\n.\r\n"),
        ["250 2.0.0 Ok: queued as 1"]
    );
    assert_eq!(
        h.messages,
        [Received {
            sender: "a@b.test".into(),
            recipients: vec!["x@y.test".into(), "z@y.test".into()],
            data: b"Subject: hi\r\n\r\n.dot\r\n".to_vec(),
        }]
    );
    assert_eq!(
        h.send(b"QUIT\r\n"),
        ["221 2.0.0 mx.test closing connection"]
    );
    assert!(h.closed && h.session.is_closed());
    // Input after QUIT is ignored.
    h.session.feed(b"NOOP\r\n");
    assert_eq!(h.session.next_event(), Event::NeedMore);
}

#[test]
fn pipelined_commands_answer_in_order() {
    let mut h = Harness::new(cfg(), false);
    h.reject_rcpt = vec!["bad@y.test".into()];
    let codes = h.codes(
        b"ehlo c.test\r\nmail from:<>\r\nrcpt to:<bad@y.test>\r\nRcPt To:<ok@y.test>\r\ndata\r\nbody\r\n.\r\nnoop\r\nquit\r\n",
    );
    assert_eq!(codes, [250, 250, 550, 250, 354, 250, 250, 221]);
    assert_eq!(h.messages[0].sender, "");
    assert_eq!(h.messages[0].recipients, ["ok@y.test"]);
    assert_eq!(h.messages[0].data, b"body\r\n");
}

#[test]
fn mail_from_event_carries_params() {
    let mut s = Session::new(cfg(), false);
    s.feed(b"EHLO c\r\nMAIL FROM:<a@b.test> SIZE=500 BODY=8BITMIME\r\n");
    assert!(matches!(s.next_event(), Event::Helo { .. }));
    s.accept();
    assert_eq!(
        s.next_event(),
        Event::MailFrom {
            address: "a@b.test".into(),
            size: Some(500),
            body_8bit: true,
            smtputf8: false
        }
    );
}

#[test]
fn sequence_errors_are_503_and_session_continues() {
    let mut h = Harness::new(cfg(), false);
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.test>\r\n"),
        ["503 5.5.1 Send EHLO/HELO first"]
    );
    h.send(b"EHLO c.test\r\n");
    assert_eq!(
        h.send(b"RCPT TO:<x@y.test>\r\n"),
        ["503 5.5.1 Need MAIL command"]
    );
    assert_eq!(h.send(b"DATA\r\n"), ["503 5.5.1 Need MAIL command"]);
    assert_eq!(
        h.codes(b"MAIL FROM:<a@b.test>\r\nMAIL FROM:<c@b.test>\r\n"),
        [250, 503]
    );
    assert_eq!(h.send(b"DATA\r\n"), ["554 5.5.1 No valid recipients"]);
    assert_eq!(
        h.codes(b"RCPT TO:<x@y.test>\r\nDATA\r\nm\r\n.\r\n"),
        [250, 354, 250]
    );
    assert_eq!(h.messages[0].sender, "a@b.test");
}

#[test]
fn rset_clears_the_transaction_but_not_helo() {
    let mut h = Harness::ready();
    let codes = h.codes(
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nRSET\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n",
    );
    assert_eq!(codes, [250, 250, 250, 503, 250]);
    assert_eq!(h.session.helo_name(), Some("client.test"));
}

#[test]
fn new_transaction_starts_without_old_recipients() {
    let mut h = Harness::ready();
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<one@y.test>\r\nDATA\r\n1\r\n.\r\n");
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<two@y.test>\r\nDATA\r\n2\r\n.\r\n");
    assert_eq!(h.messages.len(), 2);
    assert_eq!(h.messages[1].recipients, ["two@y.test"]);
}

#[test]
fn simple_commands() {
    let mut h = Harness::ready();
    assert_eq!(h.send(b"NOOP\r\n"), ["250 2.0.0 Ok"]);
    assert_eq!(
        h.send(b"VRFY bob\r\n"),
        ["252 2.5.0 Cannot VRFY user, but will accept message"]
    );
    assert_eq!(h.codes(b"HELP\r\n"), [214]);
    assert_eq!(h.send(b"FROB\r\n"), ["500 5.5.1 Command unrecognized"]);
    assert_eq!(
        h.send(b"EXPN list\r\n"),
        ["502 5.5.1 Command not implemented"]
    );
    assert_eq!(
        h.send(b"MAIL FROM:<not an address>\r\n"),
        ["501 5.5.4 Bad address syntax"]
    );
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test> RET=FULL\r\n"), [555]);
    // After all those errors the session still works (max_errors is 10).
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test>\r\n"), [250]);
}

#[test]
fn every_non_greeting_reply_has_an_enhanced_code() {
    let mut h = Harness::ready();
    for line in [
        "NOOP",
        "RSET",
        "VRFY x",
        "HELP",
        "FROB",
        "DATA",
        "RCPT TO:<a@b.test>",
        "MAIL FROM:<>",
        "QUIT",
    ] {
        h.session.feed(format!("{line}\r\n").as_bytes());
        let r = match h.session.next_event() {
            Event::Reply(r) | Event::Quit(r) => r,
            Event::MailFrom { .. } => h.session.accept(),
            other => panic!("{line}: {other:?}"),
        };
        assert!(r.enhanced.is_some(), "{line}: {r}");
    }
}

#[test]
fn helo_rejected_by_policy_keeps_session_without_helo() {
    let mut h = Harness::new(cfg(), false);
    h.reject_helo = true;
    assert_eq!(h.send(b"EHLO bad.test\r\n"), ["550 5.7.1 Go away"]);
    assert_eq!(h.session.helo_name(), None);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test>\r\n"), [503]);
}

#[test]
fn unanswered_decision_is_refused_with_451() {
    let mut s = Session::new(cfg(), false);
    s.feed(b"EHLO c\r\nNOOP\r\n");
    assert!(matches!(s.next_event(), Event::Helo { .. }));
    assert_eq!(
        s.next_event(),
        Event::Reply(Reply::with_code(
            451,
            (4, 3, 0),
            "Internal error: command left unanswered"
        ))
    );
    assert_eq!(s.helo_name(), None);
    assert_eq!(
        s.next_event(),
        Event::Reply(Reply::with_code(250, (2, 0, 0), "Ok"))
    );
    // Answering with nothing pending is harmless.
    assert_eq!(s.accept().code, 503);
    assert_eq!(
        s.accept_message(Reply::with_code(250, (2, 0, 0), "x")).code,
        503
    );
}

#[test]
fn rejected_message_ends_the_transaction() {
    let mut s = Session::new(cfg(), false);
    s.feed(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nhi\r\n.\r\nRCPT TO:<x@y.test>\r\n");
    for _ in 0..3 {
        s.next_event();
        s.accept();
    }
    assert_eq!(
        s.next_event().clone(),
        Event::Reply(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"))
    );
    assert!(matches!(s.next_event(), Event::Message { ref data, .. } if data == b"hi\r\n"));
    let r = s.reject(Reply::with_code(554, (5, 7, 1), "Spam"));
    assert_eq!(r.code, 554);
    assert_eq!(
        s.next_event(),
        Event::Reply(Reply::with_code(503, (5, 5, 1), "Need MAIL command"))
    );
}

#[test]
fn smuggled_bare_lf_terminator_stays_in_the_message() {
    let mut h = Harness::ready();
    h.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
    let codes = h.codes(b"one\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n");
    assert_eq!(codes, [250]);
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.messages[0].data, b"one\n.\nMAIL FROM:<evil@x.test>\r\n");
}

#[test]
fn smtputf8_addresses() {
    let mut h = Harness::ready();
    assert_eq!(h.codes("MAIL FROM:<jösé@b.test>\r\n".as_bytes()), [553]);
    assert_eq!(
        h.codes("MAIL FROM:<jösé@b.test> SMTPUTF8\r\nRCPT TO:<ü@dömäin.test>\r\n".as_bytes()),
        [250, 250]
    );
    let no_utf8 = ServerConfig {
        smtputf8: false,
        ..cfg()
    };
    let mut h = Harness::new(no_utf8, false);
    h.send(b"EHLO c\r\n");
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test> SMTPUTF8\r\n"), [555]);
}
