//! Tests of the I/O-free client parts: reply reader, capabilities, transaction planner,
//! dot-stuffing.

use cartero_smtp::client::*;
use cartero_smtp::{EnhancedCode, Reply};
use proptest::prelude::*;

fn read_all(input: &[u8]) -> (Vec<Reply>, Option<ReplyError>) {
    let mut r = ReplyReader::new();
    let err = r.feed(input).err();
    let mut out = Vec::new();
    while let Some(reply) = r.next_reply() {
        out.push(reply);
    }
    (out, err)
}

fn read_split(input: &[u8], cuts: &[usize]) -> (Vec<Reply>, Option<ReplyError>) {
    let mut r = ReplyReader::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    let mut err = None;
    for end in cuts.into_iter().chain([input.len()]) {
        if let Err(e) = r.feed(&input[start..end]) {
            err = Some(e);
            break;
        }
        start = end;
    }
    let mut out = Vec::new();
    while let Some(reply) = r.next_reply() {
        out.push(reply);
    }
    (out, err)
}

#[test]
fn reader_parses_pipelined_and_multiline_replies() {
    let input = b"250 2.1.0 Ok\r\n550-5.1.1 No such user\r\n550 5.1.1 see docs\r\n354 go ahead\n";
    let (replies, err) = read_all(input);
    assert_eq!(err, None);
    assert_eq!(
        replies,
        vec![
            Reply::with_code(250, (2, 1, 0), "Ok"),
            Reply::with_code(550, (5, 1, 1), "No such user\nsee docs"),
            Reply::new(354, None, "go ahead"),
        ]
    );
}

#[test]
fn reader_keeps_partial_lines_across_feeds() {
    let mut r = ReplyReader::new();
    r.feed(b"250-mx.example\r\n250-PIPE").unwrap();
    assert!(r.next_reply().is_none());
    assert!(!r.is_empty());
    r.feed(b"LINING\r\n250 SIZE 100\r").unwrap();
    assert!(r.next_reply().is_none());
    r.feed(b"\n").unwrap();
    let reply = r.next_reply().unwrap();
    assert_eq!(reply.text, "mx.example\nPIPELINING\nSIZE 100");
    assert!(r.is_empty());
}

#[test]
fn reader_rejects_garbage_and_stays_failed() {
    for bad in [
        &b"hello\r\n"[..],
        b"25\r\n",
        b"250x ok\r\n",
        b"250-a\r\n251 b\r\n",
        b"\r\n",
    ] {
        let mut r = ReplyReader::new();
        let e = r.feed(bad).unwrap_err();
        assert!(
            matches!(e, ReplyError::Malformed { .. }),
            "{bad:?} gave {e:?}"
        );
        assert_eq!(r.feed(b"250 ok\r\n"), Err(e));
        assert!(r.next_reply().is_none());
    }
    // A code out of range is not a reply either.
    assert!(read_all(b"999 what\r\n").1.is_some());
}

#[test]
fn reader_bounds_line_and_reply_size() {
    let mut r = ReplyReader::new();
    let long = vec![b'a'; MAX_REPLY_LINE + 1];
    assert_eq!(r.feed(b"250 "), Ok(()));
    assert_eq!(r.feed(&long), Err(ReplyError::LineTooLong));

    let mut r = ReplyReader::new();
    let line = format!("250-{}\r\n", "x".repeat(1000));
    let mut res = Ok(());
    for _ in 0..(MAX_REPLY_LEN / line.len() + 1) {
        res = r.feed(line.as_bytes());
        if res.is_err() {
            break;
        }
    }
    assert_eq!(res, Err(ReplyError::ReplyTooLong));
}

fn reply_lines() -> impl Strategy<Value = Vec<u8>> {
    let line = (
        prop::sample::select(vec![220u16, 250, 354, 421, 451, 550, 554]),
        any::<bool>(),
        "[ -~]{0,40}",
        any::<bool>(),
    );
    prop::collection::vec(line, 0..12).prop_map(|lines| {
        let mut out = Vec::new();
        for (code, more, text, crlf) in lines {
            let sep = if more { '-' } else { ' ' };
            out.extend_from_slice(format!("{code}{sep}{text}").as_bytes());
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        out
    })
}

proptest! {
    #[test]
    fn reader_never_panics_and_splitting_is_invisible(
        input in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        prop_assert_eq!(read_all(&input), read_split(&input, &cuts));
    }

    #[test]
    fn reader_splitting_well_formed_input_is_invisible(
        input in reply_lines(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = read_all(&input);
        prop_assert_eq!(&whole, &read_split(&input, &cuts));
        // Byte by byte is the extreme split.
        let every: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&whole, &read_split(&input, &every));
    }

    #[test]
    fn dot_stuffing_round_trips_crlf_text(lines in prop::collection::vec("[.a-z \t]{0,12}", 0..10)) {
        let mut body = Vec::new();
        for l in &lines {
            body.extend_from_slice(l.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        let stuffed = dot_stuff(&body);
        prop_assert_eq!(dot_unstuff(&stuffed), Some(body));
        assert_single_terminator(&stuffed);
    }

    #[test]
    fn dot_stuffing_arbitrary_bytes_normalizes_then_round_trips(
        body in prop::collection::vec(prop::sample::select(vec![b'.', b'\r', b'\n', b'a', 0xC3]), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..5),
    ) {
        let stuffed = dot_stuff(&body);
        prop_assert_eq!(dot_unstuff(&stuffed), Some(normalize(&body)));
        assert_single_terminator(&stuffed);
        // Streaming in pieces gives the same bytes.
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([body.len()]) {
            s.push(&body[start..end], &mut out);
            start = end;
        }
        s.finish(&mut out);
        prop_assert_eq!(out, stuffed);
    }
}

/// Independent model of the normalization: every CRLF, lone CR and lone LF becomes CRLF, and a
/// non-empty body ends with CRLF.
fn normalize(body: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = body.to_vec();
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match (text[i], text.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            (b'\r' | b'\n', _) => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn assert_single_terminator(stuffed: &[u8]) {
    let framed = [b"\r\n", stuffed].concat();
    let hits = framed.windows(5).filter(|w| w == b"\r\n.\r\n").count();
    assert_eq!(hits, 1, "{stuffed:?}");
    assert!(framed.ends_with(b"\r\n.\r\n"));
    // No bare CR or LF reaches the wire.
    for (i, b) in stuffed.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(stuffed.get(i.wrapping_sub(1)), Some(&b'\r'));
        }
        if *b == b'\r' {
            assert_eq!(stuffed.get(i + 1), Some(&b'\n'));
        }
    }
}

#[test]
fn dot_stuffing_examples() {
    assert_eq!(dot_stuff(b""), b".\r\n");
    assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
    assert_eq!(
        dot_stuff(b".a\r\n..b\r\n.\r\n"),
        b"..a\r\n...b\r\n..\r\n.\r\n"
    );
    assert_eq!(dot_stuff(b"x\n.\ny"), b"x\r\n..\r\ny\r\n.\r\n");
    assert_eq!(dot_stuff(b"x\r.\r\n"), b"x\r\n..\r\n.\r\n");
    assert_eq!(dot_unstuff(b"a\r\n"), None);
}

fn ehlo(lines: &[&str]) -> Capabilities {
    let wire: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i + 1 == lines.len() { ' ' } else { '-' }))
        .collect();
    Capabilities::from_ehlo(&Reply::from_lines(&wire).unwrap())
}

#[test]
fn capabilities_from_ehlo() {
    let caps = ehlo(&[
        "mx.google.com at your service",
        "SIZE 157286400",
        "8BITMIME",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "pipelining",
        "CHUNKING",
        "SMTPUTF8",
        "AUTH=LOGIN",
        "AUTH login PLAIN XOAUTH2",
    ]);
    assert!(caps.esmtp && caps.pipelining && caps.eight_bit_mime && caps.starttls);
    assert!(caps.enhanced_status_codes && caps.chunking && caps.smtputf8);
    assert!(caps.size_advertised);
    assert_eq!(caps.size, Some(157_286_400));
    assert_eq!(caps.auth, vec!["LOGIN", "PLAIN", "XOAUTH2"]);

    let caps = ehlo(&["mx", "SIZE"]);
    assert!(caps.size_advertised && caps.size.is_none() && !caps.pipelining);
    assert_eq!(ehlo(&["mx", "SIZE 0"]).size, None);
    let bare = ehlo(&["mx.example"]);
    assert_eq!(
        bare,
        Capabilities {
            esmtp: true,
            ..Capabilities::default()
        }
    );
}

fn caps_all() -> Capabilities {
    ehlo(&[
        "mx",
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
    ])
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ok() -> Reply {
    Reply::with_code(250, (2, 0, 0), "ok")
}

fn write_bytes(a: Action) -> (String, Phase) {
    match a {
        Action::Write { bytes, phase } => (String::from_utf8(bytes).unwrap(), phase),
        other => panic!("expected a write, got {other:?}"),
    }
}

#[test]
fn pipelined_plan_sends_one_batch_and_maps_replies() {
    let to = rcpts(&["a@x", "b@x", "c@x"]);
    let env = Envelope::for_message("s@y", &to, b"Subject: hi\r\n\r\nbody\r\n");
    let mut tx = Transaction::plan(&caps_all(), &env).unwrap();
    let (batch, phase) = write_bytes(tx.next_action());
    assert_eq!(phase, Phase::Mail);
    assert_eq!(
        batch,
        "MAIL FROM:<s@y> SIZE=21\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n"
    );
    let bad = Reply::with_code(550, (5, 1, 1), "no such user");
    for (r, phase) in [
        (ok(), Phase::Mail),
        (ok(), Phase::Rcpt),
        (bad.clone(), Phase::Rcpt),
        (ok(), Phase::Rcpt),
        (Reply::new(354, None, "go"), Phase::Data),
    ] {
        assert_eq!(tx.next_action(), Action::Read { phase });
        tx.on_reply(r).unwrap();
    }
    assert_eq!(
        tx.next_action(),
        Action::WriteBody {
            mode: BodyMode::Data
        }
    );
    assert_eq!(
        tx.next_action(),
        Action::Read {
            phase: Phase::DataEnd
        }
    );
    let queued = Reply::with_code(250, (2, 0, 0), "queued as X");
    tx.on_reply(queued.clone()).unwrap();
    assert_eq!(tx.next_action(), Action::Done);
    let done = tx.finish();
    assert!(!done.needs_rset);
    assert_eq!(done.result.rcpts, vec![ok(), bad.clone(), ok()]);
    assert_eq!(done.result.data, Some(queued.clone()));
    assert_eq!(done.result.outcome(0), Some(&queued));
    assert_eq!(done.result.outcome(1), Some(&bad));
    assert!(!done.result.local);
}

#[test]
fn unpipelined_plan_goes_one_command_at_a_time() {
    let to = rcpts(&["a@x", "b@x"]);
    let env = Envelope::for_message("", &to, b"hi\r\n");
    let mut tx = Transaction::plan(&Capabilities::default(), &env).unwrap();
    assert_eq!(
        write_bytes(tx.next_action()),
        ("MAIL FROM:<>\r\n".into(), Phase::Mail)
    );
    assert_eq!(tx.next_action(), Action::Read { phase: Phase::Mail });
    tx.on_reply(ok()).unwrap();
    assert_eq!(write_bytes(tx.next_action()).0, "RCPT TO:<a@x>\r\n");
    tx.on_reply(Reply::new(451, None, "later")).unwrap();
    assert_eq!(write_bytes(tx.next_action()).0, "RCPT TO:<b@x>\r\n");
    tx.on_reply(ok()).unwrap();
    assert_eq!(
        write_bytes(tx.next_action()),
        ("DATA\r\n".into(), Phase::Data)
    );
    tx.on_reply(Reply::new(451, None, "no")).unwrap();
    assert_eq!(tx.next_action(), Action::Done);
    let done = tx.finish();
    assert!(done.needs_rset);
    assert_eq!(done.result.data, Some(Reply::new(451, None, "no")));
}

#[test]
fn a_reply_nobody_waits_for_is_an_error() {
    let to = rcpts(&["a@x"]);
    let env = Envelope::for_message("s@y", &to, b"x");
    let mut tx = Transaction::plan(&Capabilities::default(), &env).unwrap();
    assert_eq!(tx.on_reply(ok()), Err(UnexpectedReply(ok())));
}

#[test]
fn mail_failure_applies_to_every_recipient() {
    let to = rcpts(&["a@x", "b@x"]);
    let env = Envelope::for_message("s@y", &to, b"x");
    let mut tx = Transaction::plan(&caps_all(), &env).unwrap();
    write_bytes(tx.next_action());
    let refused = Reply::with_code(553, (5, 7, 1), "sender refused");
    let bad_seq = Reply::with_code(503, (5, 5, 1), "need MAIL");
    tx.on_reply(refused.clone()).unwrap();
    tx.on_reply(bad_seq.clone()).unwrap();
    tx.on_reply(bad_seq.clone()).unwrap();
    tx.on_reply(bad_seq).unwrap();
    assert_eq!(tx.next_action(), Action::Done);
    let done = tx.finish();
    assert!(done.needs_rset);
    assert_eq!(done.result.rcpts, vec![refused.clone(), refused]);
    assert_eq!(done.result.data, None);
}

#[test]
fn all_recipients_refused_consumes_data_reply_or_ends_an_unwanted_354() {
    let to = rcpts(&["a@x"]);
    let env = Envelope::for_message("s@y", &to, b"x");
    let nope = Reply::with_code(550, (5, 1, 1), "nope");
    let mut tx = Transaction::plan(&caps_all(), &env).unwrap();
    write_bytes(tx.next_action());
    tx.on_reply(ok()).unwrap();
    tx.on_reply(nope.clone()).unwrap();
    assert_eq!(tx.next_action(), Action::Read { phase: Phase::Data });
    tx.on_reply(Reply::with_code(554, (5, 5, 1), "no valid recipients"))
        .unwrap();
    assert_eq!(tx.next_action(), Action::Done);
    let done = tx.finish();
    assert!(done.needs_rset);
    assert_eq!(done.result.data, None);
    assert_eq!(done.result.outcome(0), Some(&nope));

    let mut tx = Transaction::plan(&caps_all(), &env).unwrap();
    write_bytes(tx.next_action());
    tx.on_reply(ok()).unwrap();
    tx.on_reply(nope).unwrap();
    tx.on_reply(Reply::new(354, None, "go")).unwrap();
    assert_eq!(
        write_bytes(tx.next_action()),
        (".\r\n".into(), Phase::DataEnd)
    );
    tx.on_reply(Reply::new(554, None, "empty")).unwrap();
    assert_eq!(tx.next_action(), Action::Done);
    assert_eq!(tx.finish().result.data, None);
}

#[test]
fn mail_parameters_follow_capabilities_and_body() {
    let to = rcpts(&["a@x"]);
    let body = "Subject: caf\u{e9}\r\n\r\n".as_bytes();
    let env = Envelope::for_message("s@y", &to, body);
    assert!(env.eight_bit && env.smtputf8);
    let mut tx = Transaction::plan(&caps_all(), &env).unwrap();
    assert!(
        write_bytes(tx.next_action())
            .0
            .starts_with("MAIL FROM:<s@y> SIZE=18 BODY=8BITMIME SMTPUTF8\r\n")
    );

    let env = Envelope::for_message("s@y", &to, "hi\r\n\r\n\u{e9}".as_bytes());
    assert!(env.eight_bit && !env.smtputf8);
    let caps = ehlo(&["mx", "CHUNKING"]);
    let mut tx = Transaction::plan(&caps, &env).unwrap();
    assert_eq!(tx.body_mode(), BodyMode::Bdat);
    assert_eq!(write_bytes(tx.next_action()).0, "MAIL FROM:<s@y>\r\n");
    tx.on_reply(ok()).unwrap();
    write_bytes(tx.next_action());
    tx.on_reply(ok()).unwrap();
    assert_eq!(
        tx.next_action(),
        Action::WriteBody {
            mode: BodyMode::Bdat
        }
    );
}

#[test]
fn local_refusals_are_marked_and_send_nothing() {
    let to = rcpts(&["a@x", "b@x"]);
    let big = vec![b'a'; 1001];
    let env = Envelope::for_message("s@y", &to, &big);
    let refused = Transaction::plan(&caps_all(), &env).unwrap_err();
    assert!(refused.local);
    assert_eq!(refused.mail.code, 552);
    assert_eq!(refused.mail.enhanced, Some(EnhancedCode::new(5, 3, 4)));
    assert_eq!(refused.rcpts.len(), 2);

    let utf8_to = rcpts(&["j\u{f6}rg@x"]);
    let env = Envelope::for_message("s@y", &utf8_to, b"x");
    let refused = Transaction::plan(&ehlo(&["mx", "8BITMIME"]), &env).unwrap_err();
    assert_eq!(
        (refused.mail.code, refused.mail.enhanced),
        (553, Some(EnhancedCode::new(5, 6, 7)))
    );

    let env = Envelope::for_message("s@y>\r\nRSET", &to, b"x");
    assert_eq!(
        Transaction::plan(&caps_all(), &env).unwrap_err().mail.code,
        553
    );
}

#[test]
fn injected_recipient_is_refused_alone() {
    let to = rcpts(&["a@x", "b@x>\r\nDATA", "c@x"]);
    let env = Envelope::for_message("s@y", &to, b"x");
    let mut tx = Transaction::plan(&ehlo(&["mx", "PIPELINING"]), &env).unwrap();
    let (batch, _) = write_bytes(tx.next_action());
    assert_eq!(
        batch,
        "MAIL FROM:<s@y>\r\nRCPT TO:<a@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n"
    );
    for r in [ok(), ok(), ok(), Reply::new(354, None, "go"), ok()] {
        if matches!(tx.next_action(), Action::WriteBody { .. }) {
            assert_eq!(
                tx.next_action(),
                Action::Read {
                    phase: Phase::DataEnd
                }
            );
        }
        tx.on_reply(r).unwrap();
    }
    let res = tx.finish().result;
    assert_eq!(res.rcpts[1].code, 553);
    assert_eq!(res.rcpts[1].enhanced, Some(EnhancedCode::new(5, 1, 3)));
    assert!(res.rcpts[0].is_positive() && res.rcpts[2].is_positive());
}

/// The client used to allow 512 octets where the listener and the API allowed 320: one rule
/// now, RFC 5321 §4.5.3.1 (local part 64, path 256 with brackets).
#[test]
fn client_refuses_addresses_over_the_rfc_5321_limits_like_the_listener() {
    let long_local = format!("{}@x.test", "a".repeat(65));
    let long_path = format!("a@{}.test", "b".repeat(250));
    let to = rcpts(&["a@x", &long_local, &long_path]);
    let env = Envelope::for_message("s@y", &to, b"x");
    let mut tx = Transaction::plan(&ehlo(&["mx", "PIPELINING"]), &env).unwrap();
    let (batch, _) = write_bytes(tx.next_action());
    assert_eq!(batch, "MAIL FROM:<s@y>\r\nRCPT TO:<a@x>\r\nDATA\r\n");
    let long_sender = format!("{}@y", "s".repeat(65));
    let env = Envelope::for_message(&long_sender, &to, b"x");
    assert_eq!(
        Transaction::plan(&caps_all(), &env).unwrap_err().mail.code,
        553
    );
}
