//! Property tests of the server session: robustness, bounded memory, split invariance and DATA
//! transparency.

mod server_support;

use cartero_smtp::server::{AUTH_LINE_MAX, ServerConfig, dot_stuff};
use proptest::prelude::*;
use server_support::{Harness, Received, cfg};

fn prop_cfg(max_errors: u32) -> ServerConfig {
    ServerConfig {
        max_message_size: 2_000,
        max_errors,
        auth_requires_tls: false,
        ..cfg()
    }
}

/// Cuts `bytes` at the given positions (taken modulo the length).
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return vec![Vec::new()];
    }
    let mut at: Vec<usize> = cuts.iter().map(|c| c % bytes.len()).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Bytes that look like SMTP often enough to reach every state.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let lines: Vec<&'static [u8]> = vec![
        b"EHLO c.test\r\n",
        b"HELO c\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"MAIL FROM:<> SIZE=50000\r\n",
        b"RCPT TO:<x@y.test>\r\n",
        b"RCPT TO:<bad@y.test>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"\r\n.\r\n",
        b"BDAT 5\r\n",
        b"BDAT 3 LAST\r\n",
        b"BDAT 99999\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
        b"AUTH LOGIN\r\n",
        b"Ym9i\r\n",
        b"*\r\n",
        b"QUIT\r\n",
        b"NO\0OP\r\n",
    ];
    prop_oneof![
        3 => proptest::sample::select(lines).prop_map(|l| l.to_vec()),
        2 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => (0usize..20_000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn run_chunks(cfg: ServerConfig, chunks: &[Vec<u8>]) -> Harness {
    let mut h = Harness::new(cfg, false);
    h.reject_rcpt = vec!["bad@y.test".into()];
    for c in chunks {
        h.send(c);
        if h.closed {
            break;
        }
    }
    h
}

/// A pipelined script item (no STARTTLS: its discard depends on read boundaries by design).
fn script_item() -> impl Strategy<Value = Vec<u8>> {
    let lines: Vec<&'static [u8]> = vec![
        b"EHLO c.test\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"MAIL FROM:<> BODY=8BITMIME\r\n",
        b"RCPT TO:<x@y.test>\r\n",
        b"RCPT TO:<bad@y.test>\r\n",
        b"RCPT TO:<z@y.test>\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"VRFY x\r\n",
        b"FROB\r\n",
        b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
        b"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
        b"AUTH PLAIN\r\n*\r\n",
        b"NO\0OP\r\n",
    ];
    prop_oneof![
        6 => proptest::sample::select(lines).prop_map(|l| l.to_vec()),
        2 => proptest::collection::vec(any::<u8>(), 0..400).prop_map(|body| {
            let mut v = b"DATA\r\n".to_vec();
            v.extend(dot_stuff(&body));
            v
        }),
        2 => (proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()).prop_map(|(chunk, last)| {
            let mut v = format!("BDAT {}{}\r\n", chunk.len(), if last { " LAST" } else { "" }).into_bytes();
            v.extend(chunk);
            v
        }),
        1 => prop_oneof![505usize..520, 520usize..3000].prop_map(|n| { let mut v = vec![b'L'; n]; v.extend_from_slice(b"\r\n"); v }),
    ]
}

/// A body with many dots, CRs and LFs, normalised to end in CRLF (as DATA requires).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()];
    proptest::collection::vec(byte, 0..1500).prop_map(|mut b| {
        if !b.is_empty() && !b.ends_with(b"\r\n") {
            b.extend_from_slice(b"\r\n");
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_memory_stays_bounded(
        frags in proptest::collection::vec(fragment(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        unlimited_errors in any::<bool>(),
    ) {
        let cfg = prop_cfg(if unlimited_errors { 0 } else { 10 });
        let max_msg = cfg.max_message_size;
        let input = frags.concat();
        let mut h = Harness::new(cfg, false);
        for c in split(&input, &cuts) {
            h.send(&c);
            prop_assert!(h.session.buffered_input_len() <= AUTH_LINE_MAX,
                "buffered {}", h.session.buffered_input_len());
            prop_assert!(h.session.message_buffer_len() <= max_msg);
            if h.closed {
                break;
            }
        }
        // Every reply is a well-formed three-digit code.
        for r in &h.replies {
            let code: u16 = r[..3].parse().unwrap();
            prop_assert!((200..600).contains(&code), "{}", r);
        }
    }

    #[test]
    fn any_split_of_a_pipelined_script_gives_the_same_replies(
        items in proptest::collection::vec(script_item(), 1..25),
        cuts in proptest::collection::vec(any::<usize>(), 1..30),
    ) {
        let mut input = b"EHLO c.test\r\n".to_vec();
        input.extend(items.concat());
        input.extend_from_slice(b"QUIT\r\n");
        let whole = run_chunks(prop_cfg(25), &[input.clone()]);
        let pieces = run_chunks(prop_cfg(25), &split(&input, &cuts));
        let bytes = run_chunks(prop_cfg(25), &input.iter().map(|&b| vec![b]).collect::<Vec<_>>());
        prop_assert_eq!(&whole.replies, &pieces.replies);
        prop_assert_eq!(&whole.replies, &bytes.replies);
        prop_assert_eq!(&whole.messages, &pieces.messages);
        prop_assert_eq!(&whole.messages, &bytes.messages);
        prop_assert_eq!(&whole.auths, &pieces.auths);
    }

    #[test]
    fn data_dot_stuffing_round_trips(
        body in body(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let cfg = ServerConfig { max_text_line: 0, ..cfg() };
        let mut input = b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n".to_vec();
        input.extend(dot_stuff(&body));
        input.extend_from_slice(b"NOOP\r\n");
        let h = run_chunks(cfg, &split(&input, &cuts));
        prop_assert_eq!(
            h.messages,
            vec![Received { sender: "a@b.test".into(), recipients: vec!["x@y.test".into()], data: body }]
        );
        prop_assert_eq!(h.replies.last().map(String::as_str), Some("250 2.0.0 Ok"));
    }
}
