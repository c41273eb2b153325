//! Server session: limits, BDAT, AUTH and STARTTLS.

mod server_support;

use cartero_smtp::server::{AuthMechanism, Event, ServerConfig, Session};
use server_support::{Harness, cfg};

fn in_transaction(h: &mut Harness) {
    assert_eq!(
        h.codes(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n"),
        [250, 250]
    );
}

#[test]
fn overlong_command_line_is_refused_and_skipped() {
    let mut h = Harness::ready();
    let mut line = b"NOOP ".to_vec();
    line.resize(600, b'x');
    line.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(h.send(&line), ["500 5.5.2 Line too long", "250 2.0.0 Ok"]);
    // Exactly 512 bytes with CRLF is fine.
    let mut ok = b"NOOP ".to_vec();
    ok.resize(510, b'x');
    ok.extend_from_slice(b"\r\n");
    assert_eq!(h.codes(&ok), [250]);
}

#[test]
fn ten_megabyte_line_without_crlf_is_not_buffered() {
    let mut h = Harness::ready();
    let chunk = vec![b'A'; 8192];
    let mut replies = Vec::new();
    for _ in 0..(10 * 1024 * 1024 / chunk.len()) {
        replies.extend(h.send(&chunk));
        assert!(
            h.session.buffered_input_len() <= 512,
            "{}",
            h.session.buffered_input_len()
        );
    }
    replies.extend(h.send(b"\r\nNOOP\r\n"));
    assert_eq!(replies, ["500 5.5.2 Line too long", "250 2.0.0 Ok"]);
}

#[test]
fn long_auth_lines_are_allowed_up_to_rfc_4954_limit() {
    let mut h = Harness::new(cfg(), true);
    h.send(b"EHLO c\r\n");
    // 1500 bytes of valid base64 (decodes to NUL-free junk: a malformed PLAIN message, not too long).
    let line = format!("AUTH PLAIN {}\r\n", "QUFB".repeat(375));
    assert_eq!(h.codes(line.as_bytes()), [501]);
    assert!(h.send(line.as_bytes())[0].contains("PLAIN message"));
}

#[test]
fn nul_and_control_bytes_in_commands() {
    let mut h = Harness::ready();
    assert_eq!(
        h.send(b"NO\0OP\r\n"),
        ["501 5.5.2 Invalid character in command"]
    );
    assert_eq!(
        h.send(b"NOOP\rx\r\n"),
        ["501 5.5.2 Invalid character in command"]
    );
    assert_eq!(
        h.send(b"NOOP \xff\r\n"),
        ["501 5.5.2 Invalid UTF-8 in command"]
    );
    assert_eq!(h.codes(b"NOOP\r\n"), [250]);
}

#[test]
fn too_many_errors_close_with_421() {
    let cfg = ServerConfig {
        max_errors: 3,
        ..cfg()
    };
    let mut h = Harness::new(cfg, false);
    let replies = h.send(b"X\r\nY\r\nZ\r\nNOOP\r\n");
    assert_eq!(
        replies,
        [
            "500 5.5.1 Command unrecognized",
            "500 5.5.1 Command unrecognized",
            "421 4.7.0 Too many errors, closing connection"
        ]
    );
    assert!(h.closed && h.session.is_closed());
    assert_eq!(h.session.buffered_input_len(), 0);
}

#[test]
fn too_many_recipients_gives_452() {
    let mut h = Harness::ready();
    let codes = h.codes(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\nRCPT TO:<3@y.test>\r\nRCPT TO:<4@y.test>\r\n");
    assert_eq!(codes, [250, 250, 250, 250, 452]);
    assert_eq!(h.replies.last().unwrap(), "452 4.5.3 Too many recipients");
    // Rejected recipients do not count towards the limit.
    let mut h = Harness::ready();
    h.reject_rcpt = vec!["bad@y.test".into()];
    let codes = h.codes(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bad@y.test>\r\nRCPT TO:<bad@y.test>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\nRCPT TO:<3@y.test>\r\n");
    assert_eq!(codes, [250, 550, 550, 250, 250, 250]);
}

#[test]
fn declared_size_over_limit_gives_552() {
    let mut h = Harness::ready();
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.test> SIZE=10001\r\n"),
        ["552 5.3.4 Message size exceeds fixed maximum message size"]
    );
    assert_eq!(
        h.codes(b"MAIL FROM:<a@b.test> SIZE=99999999999999999999\r\n"),
        [552]
    );
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test> SIZE=10000\r\n"), [250]);
}

#[test]
fn oversized_data_is_read_dropped_and_refused() {
    let mut h = Harness::ready();
    in_transaction(&mut h);
    assert_eq!(h.codes(b"DATA\r\n"), [354]);
    let line = [b'z'; 98]
        .iter()
        .chain(b"\r\n")
        .copied()
        .collect::<Vec<u8>>();
    for _ in 0..500 {
        assert!(h.send(&line).is_empty());
        assert!(h.session.message_buffer_len() <= 10_000);
    }
    assert_eq!(
        h.send(b".\r\n"),
        ["552 5.3.4 Message size exceeds fixed maximum message size"]
    );
    assert!(h.messages.is_empty());
    // The transaction is over; a new one works.
    in_transaction(&mut h);
}

#[test]
fn overlong_data_line_is_refused() {
    let mut h = Harness::ready();
    in_transaction(&mut h);
    let mut body = b"DATA\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'q', 1200));
    body.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(
        h.send(&body),
        [
            "354 End data with <CR><LF>.<CR><LF>",
            "500 5.5.2 Line too long"
        ]
    );
    assert!(h.messages.is_empty());
}

#[test]
fn bdat_chunks_are_binary_exact() {
    let mut h = Harness::ready();
    in_transaction(&mut h);
    let mut input = b"BDAT 7\r\n\r\n.\r\n\0\xff".to_vec();
    input.extend_from_slice(b"BDAT 3 LAST\r\nend");
    assert_eq!(
        h.send(&input),
        ["250 2.0.0 7 bytes received", "250 2.0.0 Ok: queued as 1"]
    );
    assert_eq!(h.messages[0].data, b"\r\n.\r\n\0\xffend");
    // Empty last chunk, data split across reads.
    in_transaction(&mut h);
    assert_eq!(h.codes(b"BDAT 4\r\nab"), Vec::<u16>::new());
    assert_eq!(h.codes(b"cdBDAT 0 LAST\r\n"), [250, 250]);
    assert_eq!(h.messages[1].data, b"abcd");
}

#[test]
fn bdat_out_of_sequence_still_consumes_the_chunk() {
    let mut h = Harness::ready();
    assert_eq!(
        h.send(b"BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n"),
        ["503 5.5.1 Need MAIL command", "250 2.0.0 Ok"]
    );
    h.reject_rcpt = vec!["bad@y.test".into()];
    let codes =
        h.codes(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bad@y.test>\r\nBDAT 2 LAST\r\nxxRSET\r\n");
    assert_eq!(codes, [250, 550, 554, 250]);
    in_transaction(&mut h);
    assert_eq!(h.codes(b"BDAT 1\r\nxDATA\r\n"), [250, 503]);
    let no_chunking = ServerConfig {
        chunking: false,
        ..cfg()
    };
    let mut h = Harness::new(no_chunking, false);
    assert_eq!(
        h.codes(b"EHLO c\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n"),
        [250, 502, 250]
    );
}

#[test]
fn bdat_over_size_is_refused_with_bounded_memory() {
    let mut h = Harness::ready();
    in_transaction(&mut h);
    let chunk = vec![b'k'; 6000];
    let mut input = b"BDAT 6000\r\n".to_vec();
    input.extend_from_slice(&chunk);
    assert_eq!(h.codes(&input), [250]);
    assert_eq!(h.codes(&input), [552]);
    assert_eq!(h.session.message_buffer_len(), 0);
    let mut last = b"BDAT 6000 LAST\r\n".to_vec();
    last.extend_from_slice(&chunk);
    assert_eq!(h.codes(&last), [552]);
    assert!(h.messages.is_empty());
    in_transaction(&mut h);
}

#[test]
fn auth_requires_tls_when_configured() {
    let mut h = Harness::ready();
    assert_eq!(
        h.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        ["538 5.7.11 Encryption required for requested authentication mechanism"]
    );
    assert!(!h.session.is_authenticated());
    let no_auth = ServerConfig {
        auth: false,
        ..cfg()
    };
    let mut h = Harness::new(no_auth, true);
    assert_eq!(
        h.codes(b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        [250, 502]
    );
}

fn tls_ready() -> Harness {
    let mut h = Harness::new(cfg(), true);
    h.send(b"EHLO c.test\r\n");
    h
}

#[test]
fn auth_plain_with_initial_response() {
    let mut s = Session::new(cfg(), true);
    // "\0alice\0secret"
    s.feed(b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    s.next_event();
    s.accept();
    assert_eq!(
        s.next_event(),
        Event::Auth {
            mechanism: AuthMechanism::Plain,
            username: "alice".into(),
            password: "secret".into()
        }
    );
    assert_eq!(
        s.accept().to_string(),
        "235 2.7.0 Authentication successful"
    );
    assert!(s.is_authenticated());
    assert_eq!(s.auth_user(), Some("alice"));
}

#[test]
fn auth_plain_challenge_login_and_failures() {
    let mut h = tls_ready();
    assert_eq!(h.send(b"AUTH PLAIN\r\n"), ["334"]);
    assert_eq!(
        h.send(b"AGJvYgB3cm9uZw==\r\n"),
        ["535 5.7.8 Authentication credentials invalid"]
    );
    assert_eq!(h.auths, [("bob".to_string(), "wrong".to_string())]);
    assert_eq!(h.send(b"AUTH LOGIN\r\n"), ["334 VXNlcm5hbWU6"]);
    assert_eq!(h.send(b"Ym9i\r\n"), ["334 UGFzc3dvcmQ6"]);
    assert_eq!(
        h.send(b"c2VjcmV0\r\n"),
        ["235 2.7.0 Authentication successful"]
    );
    assert_eq!(h.session.auth_user(), Some("bob"));
    assert_eq!(
        h.send(b"AUTH LOGIN\r\n"),
        ["503 5.5.1 Already authenticated"]
    );
}

#[test]
fn auth_login_with_initial_user_name() {
    let mut h = tls_ready();
    assert_eq!(h.send(b"auth login Ym9i\r\n"), ["334 UGFzc3dvcmQ6"]);
    assert_eq!(h.codes(b"c2VjcmV0\r\n"), [235]);
}

#[test]
fn auth_cancel_bad_base64_and_bad_mechanism() {
    let mut h = tls_ready();
    assert_eq!(h.codes(b"AUTH LOGIN\r\n*\r\n"), [334, 501]);
    assert_eq!(
        h.replies.last().unwrap(),
        "501 5.7.0 Authentication canceled"
    );
    assert_eq!(
        h.send(b"AUTH PLAIN\r\n!!notbase64\r\n")[1],
        "501 5.5.2 Invalid authentication response: invalid base64 data"
    );
    assert_eq!(h.codes(b"AUTH PLAIN ###\r\n"), [501]);
    assert_eq!(h.codes(b"AUTH CRAM-MD5\r\n"), [504]);
    // Back in command mode after each failure.
    assert_eq!(h.codes(b"NOOP\r\n"), [250]);
    assert!(!h.session.is_authenticated());
    in_transaction(&mut h);
    assert_eq!(
        h.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        ["503 5.5.1 AUTH not permitted during a mail transaction"]
    );
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets() {
    let mut h = Harness::ready();
    // The MAIL pipelined behind STARTTLS must not survive the handshake (RFC 3207 §4.2).
    let replies = h.send(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
    assert_eq!(replies, ["220 2.0.0 Ready to start TLS"]);
    assert!(h.session.is_tls());
    assert_eq!(h.session.buffered_input_len(), 0);
    assert_eq!(h.session.helo_name(), None);
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test>\r\n"), [503]);
    let caps = h.send(b"EHLO c.test\r\n").join("|");
    assert!(
        !caps.contains("STARTTLS") && caps.contains("AUTH PLAIN LOGIN"),
        "{caps}"
    );
    assert_eq!(h.send(b"STARTTLS\r\n"), ["503 5.5.1 TLS already active"]);
}

#[test]
fn starttls_waits_for_the_handshake_and_can_be_refused() {
    let mut s = Session::new(cfg(), false);
    s.feed(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(s.next_event(), Event::StartTls);
    assert_eq!(s.accept().code, 220);
    assert_eq!(s.next_event(), Event::NeedMore);
    s.tls_established();
    assert_eq!(s.next_event(), Event::NeedMore);

    let mut s = Session::new(cfg(), false);
    s.feed(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(s.next_event(), Event::StartTls);
    let r = cartero_smtp::Reply::with_code(454, (4, 7, 0), "TLS not available");
    assert_eq!(s.reject(r).code, 454);
    assert!(matches!(s.next_event(), Event::Reply(r) if r.code == 250));
    assert!(!s.is_tls());

    let mut h = Harness::new(
        ServerConfig {
            starttls: false,
            ..cfg()
        },
        false,
    );
    assert_eq!(h.codes(b"STARTTLS\r\n"), [502]);
}
