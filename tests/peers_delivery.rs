//! Delivery to real receivers: Postfix's smtp-sink and python aiosmtpd get what swaks injected,
//! and smtp-source loads cartero with 200 messages that must all end at smtp-sink.

mod support;

use support::peers::{
    self, Aiosmtpd, SMTP_SINK, SMTP_SOURCE, SWAKS, SmtpSink, have, have_aiosmtpd, swaks,
};
use support::{ConfigBuilder, DEADLINE, Serve, wait_until};

fn serve_routed(dir: &tempfile::TempDir, domain: &str, to: std::net::SocketAddr) -> Serve {
    let data = dir.path().join("data");
    let path = ConfigBuilder::new(&data)
        .route(domain, to)
        .write(&dir.path().join("cartero.toml"));
    Serve::start(&path, &data)
}

#[test]
fn swaks_to_cartero_to_postfix_smtp_sink() {
    if !have(SWAKS, "swaks") || !have(SMTP_SINK, "postfix (smtp-sink)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&dir.path().join("dump"));
    let mta = serve_routed(&dir, "dest.test", sink.addr);

    let (code, out) = swaks(
        mta.smtp,
        &[
            "-f",
            "a@src.test",
            "-t",
            "b@dest.test",
            "--body",
            "to-smtp-sink-7",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let found = || {
        sink.dumps()
            .into_iter()
            .find(|d| d.contains("to-smtp-sink-7"))
    };
    assert!(
        wait_until(DEADLINE, || found().is_some()),
        "nothing arrived at smtp-sink:\n{}",
        mta.log()
    );
    let dump = found().unwrap();
    // smtp-sink records the envelope and the HELO it was given, then the content as received.
    assert!(dump.contains("X-Helo-Args: cartero.test"), "{dump}");
    assert!(dump.contains("X-Mail-Args: <a@src.test>"), "{dump}");
    assert!(dump.contains("X-Rcpt-Args: <b@dest.test>"), "{dump}");
    let content = dump
        .split_once("\nReceived: ")
        .map(|(_, c)| c)
        .expect("our Received header");
    assert!(content.contains("by cartero.test with ESMTP;"), "{dump}");
    assert!(content.contains("X-Mailer: swaks"), "{dump}");
    // A delivery event records the receiver's reply.
    assert!(
        wait_until(DEADLINE, || !mta.events("delivery").is_empty()),
        "no delivery event"
    );
}

#[test]
fn swaks_to_cartero_to_aiosmtpd_exact_body() {
    if !have(SWAKS, "swaks") || !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = Aiosmtpd::start(&dir.path().join("received"), 0.0);
    let mta = serve_routed(&dir, "dest.test", receiver.addr);

    // Message-ID and Date present, so cartero adds nothing but its Received header. The body has
    // a leading-dot line (dot-stuffing both ways), 8-bit text and trailing whitespace lines.
    let original = "From: Sender <a@src.test>\r\nTo: <b@dest.test>\r\nSubject: exact body\r\n\
        Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <exact-8@src.test>\r\n\r\n\
        first line\r\n.leading dot\r\n..two dots\r\nÜmlaut – ünïcödé\r\n \r\n\t\r\nlast line\r\n";
    let file = dir.path().join("msg.eml");
    // swaks ends the data with CRLF before the final dot, so the file leaves the last one out.
    std::fs::write(&file, original.strip_suffix("\r\n").unwrap()).unwrap();
    let data = format!("@{}", file.display());
    let (code, out) = swaks(
        mta.smtp,
        &["-f", "a@src.test", "-t", "b@dest.test", "--data", &data],
    );
    assert_eq!(code, 0, "{out}");

    assert!(
        wait_until(DEADLINE, || !receiver.messages().is_empty()),
        "nothing arrived at aiosmtpd:\n{}",
        mta.log()
    );
    let msgs = receiver.messages();
    assert_eq!(msgs.len(), 1);
    let (envelope, bytes) = &msgs[0];
    assert_eq!(envelope["mail_from"], "a@src.test");
    assert_eq!(envelope["rcpt_tos"], serde_json::json!(["b@dest.test"]));
    assert_eq!(envelope["helo"], "cartero.test");
    let text = String::from_utf8(bytes.clone()).expect("8-bit body intact");
    let trace = text
        .strip_suffix(original)
        .unwrap_or_else(|| panic!("body changed:\n{text}"));
    assert!(trace.starts_with("Received: from "), "{trace}");
    assert!(trace.contains("by cartero.test with ESMTP;"), "{trace}");
    // Exactly one header was added: one Received field (possibly folded).
    let added = trace
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
        .count();
    assert_eq!(added, 1, "unexpected headers added:\n{trace}");
}

#[test]
fn smtp_source_load_ends_at_smtp_sink() {
    if !have(SMTP_SOURCE, "postfix (smtp-source)") || !have(SMTP_SINK, "postfix (smtp-sink)") {
        return;
    }
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&dir.path().join("dump"));
    let mta = serve_routed(&dir, "dest.test", sink.addr);

    // 5 parallel sessions, 200 messages of 2000 bytes.
    peers::smtp_source(
        mta.smtp,
        &[
            "-s",
            "5",
            "-m",
            &N.to_string(),
            "-l",
            "2000",
            "-f",
            "a@src.test",
            "-t",
            "b@dest.test",
        ],
    );
    // Every message was acknowledged by smtp-sink (delivery events) and dumped there.
    let delivered = || mta.events("delivery").len();
    assert!(
        wait_until(DEADLINE, || delivered() >= N),
        "{} of {N} delivered:\n{}",
        delivered(),
        mta.log()
    );
    let dumps = sink.dumps();
    let ours = dumps
        .iter()
        .filter(|d| d.contains("by cartero.test with ESMTP;"))
        .count();
    assert_eq!(ours, N, "smtp-sink holds {} dumps", dumps.len());
    assert_eq!(delivered(), N, "duplicate deliveries");
    let bounces = mta.events("bounce").len() + mta.events("delay").len();
    assert_eq!(bounces, 0, "failures during the load test");
}
