//! swaks (an independent SMTP client) injects into `cartero serve`: plain, STARTTLS, AUTH after
//! STARTTLS, PIPELINING, 8-bit bodies, and relay control. Delivery goes to an in-test sink so the
//! Received header cartero adds and the exact bytes can be checked.

mod support;

use support::peers::{SWAKS, have, swaks};
use support::sink::{Sink, SinkMsg};
use support::{ConfigBuilder, DEADLINE, Serve};

const PASSWORD: &str = "s3cret-Passw0rd";

/// A serve whose `dest.test` (and `elsewhere.test`) route to `sink`; `smtp` lines go to `[smtp]`.
fn serve(dir: &tempfile::TempDir, sink: &Sink, smtp: &[&str], raw: &str) -> Serve {
    let data = dir.path().join("data");
    let mut cfg = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .route("elsewhere.test", sink.addr)
        .raw(raw);
    for l in smtp {
        cfg = cfg.smtp(l);
    }
    let path = cfg.write(&dir.path().join("cartero.toml"));
    Serve::start(&path, &data)
}

/// The sink's message whose body contains `marker`, waiting for it to arrive.
fn delivered(sink: &Sink, marker: &str) -> SinkMsg {
    let has = |m: &SinkMsg| String::from_utf8_lossy(&m.data).contains(marker);
    assert!(
        sink.wait_for(DEADLINE, |v| v.iter().any(has)),
        "message {marker} never reached the sink"
    );
    sink.accepted().into_iter().find(|m| has(m)).unwrap()
}

fn first_header(msg: &SinkMsg) -> String {
    let text = String::from_utf8_lossy(&msg.data).into_owned();
    let mut lines = text.split("\r\n");
    let mut h = lines.next().unwrap_or("").to_string();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        h.push_str(l);
    }
    h
}

#[test]
fn swaks_plain_starttls_pipelining_and_8bit() {
    if !have(SWAKS, "swaks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let mta = serve(&dir, &sink, &[], "");

    // Plain ESMTP.
    let (code, out) = swaks(
        mta.smtp,
        &["-f", "a@src.test", "-t", "b@dest.test", "--body", "plain-1"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("<~  250 2.0.0 Ok: queued as") || out.contains("<-  250 2.0.0 Ok: queued as"),
        "{out}"
    );
    let m = delivered(&sink, "plain-1");
    assert_eq!(m.mail_from, "a@src.test");
    assert_eq!(m.rcpts, ["b@dest.test"]);
    let received = first_header(&m);
    assert!(received.starts_with("Received: from "), "{received}");
    assert!(
        received.contains("by cartero.test with ESMTP;"),
        "{received}"
    );
    assert!(received.contains("([127.0.0.1])"), "{received}");

    // STARTTLS: the trace header records the TLS session (ESMTPS).
    let (code, out) = swaks(
        mta.smtp,
        &[
            "-f",
            "a@src.test",
            "-t",
            "b@dest.test",
            "--tls",
            "--body",
            "tls-2",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("STARTTLS") && out.contains("TLS started"),
        "{out}"
    );
    let received = first_header(&delivered(&sink, "tls-2"));
    assert!(received.contains("with ESMTPS;"), "{received}");

    // PIPELINING: swaks sends RCPT and DATA before reading the reply to MAIL.
    let (code, out) = swaks(
        mta.smtp,
        &[
            "-f",
            "a@src.test",
            "-t",
            "b@dest.test,c@dest.test",
            "--pipeline",
            "--body",
            "pipe-3",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250-PIPELINING"), "{out}");
    let data_sent = out.find("> DATA").expect("DATA sent");
    let mail_ok = out.find("250 2.1.0").expect("MAIL accepted");
    assert!(data_sent < mail_ok, "commands were not pipelined:\n{out}");
    let both = |v: &[SinkMsg]| rcpts_with(v, "pipe-3") == ["b@dest.test", "c@dest.test"];
    assert!(sink.wait_for(DEADLINE, both), "{:?}", sink.accepted());

    // An 8-bit UTF-8 body arrives byte for byte.
    let body = "8bit-4 Grüße aus Köln — 日本語 ✉";
    let (code, out) = swaks(
        mta.smtp,
        &["-f", "a@src.test", "-t", "b@dest.test", "--body", body],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250-8BITMIME"), "{out}");
    let m = delivered(&sink, "8bit-4");
    let text = String::from_utf8(m.data.clone()).expect("body is still valid UTF-8");
    assert!(text.contains(&format!("\r\n\r\n{body}\r\n")), "{text}");
}

/// Every recipient that received a message containing `marker`, sorted.
fn rcpts_with(msgs: &[SinkMsg], marker: &str) -> Vec<String> {
    let mut r: Vec<String> = msgs
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.data).contains(marker))
        .flat_map(|m| m.rcpts.clone())
        .collect();
    r.sort();
    r
}

#[test]
fn swaks_relay_control_and_auth_after_starttls() {
    if !have(SWAKS, "swaks") {
        return;
    }
    let (code, hash, err) = support::run(&["passwd"], Some(PASSWORD));
    assert_eq!(code, 0, "{err}");
    let users = format!(
        "[[smtp.users]]\nusername = \"app\"\npassword_hash = {:?}\n",
        hash.trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let mta = serve(&dir, &sink, &["relay_networks = []"], &users);

    // Not in relay_networks and not authenticated: relaying is refused at RCPT.
    let (code, out) = swaks(
        mta.smtp,
        &[
            "-f",
            "a@src.test",
            "-t",
            "x@elsewhere.test",
            "--body",
            "relay-5",
        ],
    );
    assert_eq!(code, 24, "expected 'no RCPTs accepted':\n{out}");
    assert!(out.contains("554 5.7.1"), "{out}");

    // AUTH is not offered before TLS.
    let auth = ["--auth", "PLAIN", "--auth-user", "app"];
    let mut args = vec![
        "-f",
        "a@src.test",
        "-t",
        "x@elsewhere.test",
        "--auth-password",
        PASSWORD,
    ];
    args.extend(auth);
    let (code, out) = swaks(mta.smtp, &args);
    assert_eq!(code, 28, "AUTH must not work without TLS:\n{out}");

    // Wrong password after STARTTLS: 535.
    let mut bad = vec![
        "-f",
        "a@src.test",
        "-t",
        "x@elsewhere.test",
        "--tls",
        "--auth-password",
        "wrong",
    ];
    bad.extend(auth);
    let (code, out) = swaks(mta.smtp, &bad);
    assert_eq!(code, 28, "{out}");
    assert!(out.contains("535"), "{out}");

    // Right password after STARTTLS: the authenticated client may relay.
    args.extend(["--tls", "--body", "auth-6"]);
    let (code, out) = swaks(mta.smtp, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("235"), "{out}");
    let m = delivered(&sink, "auth-6");
    assert_eq!(m.rcpts, ["x@elsewhere.test"]);
    let received = first_header(&m);
    assert!(received.contains("with ESMTPSA;"), "{received}");

    // The refused attempt never went anywhere.
    assert!(
        !sink
            .accepted()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("relay-5")),
        "a refused relay attempt was delivered"
    );
}
