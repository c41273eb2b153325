//! The command line from the outside: config check/defaults, DKIM keygen, bounce classify, and the
//! operator commands (queue, flush, inject) against a running `cartero serve`.

mod support;

use support::peers::have;
use support::sink::Sink;
use support::{ConfigBuilder, DEADLINE, Serve, run};

#[test]
fn config_check_names_the_unknown_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "hostname = \"a.test\"\n\n[smtp]\nmax_recipients = 5\nmax_mesage_size = 1\n",
    )
    .unwrap();
    let (code, out, err) = run(&["config", "check", file.to_str().unwrap()], None);
    assert_ne!(code, 0, "accepted an unknown key: {out}");
    assert!(err.contains("max_mesage_size"), "{err}");
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn config_defaults_parse_back_with_check() {
    let (code, defaults, err) = run(&["config", "defaults"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        defaults.contains("[smtp]") && defaults.contains("relay_networks"),
        "{defaults}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defaults.toml");
    std::fs::write(&file, &defaults).unwrap();
    let (code, out, err) = run(&["config", "check", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ok");
}

/// The quoted strings of a zone-file TXT record.
fn txt_strings(record: &str) -> Vec<String> {
    record
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn dkim_keygen_writes_a_pem_and_prints_a_split_txt_record() {
    if !have("/usr/bin/openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("s1.pem");
    let pem_s = pem.to_str().unwrap();
    let args = [
        "dkim",
        "keygen",
        "--domain",
        "example.test",
        "--selector",
        "s1",
        "--out",
        pem_s,
    ];
    let (code, record, err) = run(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        record.starts_with("s1._domainkey.example.test."),
        "{record}"
    );
    let strings = txt_strings(&record);
    assert!(
        strings.len() >= 2,
        "a 2048-bit key needs several strings: {record}"
    );
    assert!(strings.iter().all(|s| s.len() <= 255), "{record}");
    let joined = strings.concat();
    let p = joined
        .strip_prefix("v=DKIM1; k=rsa; p=")
        .expect("v=DKIM1 first");

    // The published key is the public half of the written PEM (checked by openssl).
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-in", pem_s, "-pubout", "-outform", "DER"])
        .output()
        .unwrap();
    assert!(der.status.success(), "openssl cannot read the PEM");
    let b64 = std::process::Command::new("openssl")
        .args(["base64", "-A"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&der.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(p, String::from_utf8_lossy(&b64.stdout).trim());

    // Never overwrites a key.
    let (code, _, err) = run(&args, None);
    assert_ne!(code, 0, "overwrote an existing key");
    assert!(err.contains("exists"), "{err}");

    let ed = dir.path().join("s2.pem");
    let (code, record, err) = run(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.test",
            "--selector",
            "s2",
            "--algorithm",
            "ed25519",
            "--out",
            ed.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        txt_strings(&record)
            .concat()
            .starts_with("v=DKIM1; k=ed25519; p="),
        "{record}"
    );
    assert!(
        std::fs::read_to_string(&ed)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

#[test]
fn bounce_classify_prints_the_class() {
    let (code, out, err) = run(&["bounce", "classify", "550 5.1.1 user unknown"], None);
    assert_eq!(code, 0, "{err}");
    let class = out
        .lines()
        .find_map(|l| l.strip_prefix("class:"))
        .map(str::trim);
    assert!(
        class.is_some_and(|c| c.starts_with("10 ") || c == "10"),
        "{out}"
    );
    let (_, out, _) = run(&["bounce", "classify", "452 4.2.2 mailbox full"], None);
    let class = out
        .lines()
        .find_map(|l| l.strip_prefix("class:"))
        .map(str::trim);
    assert!(class.is_some_and(|c| c.starts_with("22")), "{out}");
}

fn queued(cfg: &str, api: &str) -> serde_json::Value {
    let (code, out, err) = run(&["queue", "--json", "-c", cfg, "--api", api], None);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn operator_commands_against_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    sink.set_temp_fail(true);
    let config = ConfigBuilder::new(&data)
        .route("held.test", sink.addr)
        .write(&dir.path().join("cartero.toml"));
    let cfg = config.to_str().unwrap();
    let mta = Serve::start(&config, &data);
    // The token comes from data_dir/api-token through the config; only the address is given.
    let api = format!("http://{}", mta.http);

    // inject through the API; the receiver answers 451, so the recipient stays queued.
    let file = dir.path().join("m.eml");
    std::fs::write(
        &file,
        "From: a@src.test\r\nTo: x@held.test\r\nSubject: held\r\n\r\nheld body\r\n",
    )
    .unwrap();
    let args = [
        "inject",
        file.to_str().unwrap(),
        "--from",
        "a@src.test",
        "--to",
        "x@held.test",
        "-c",
        cfg,
        "--api",
        &api,
    ];
    let (code, out, err) = run(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_end().ends_with(" x@held.test"), "{out}");
    let failed_once = || !mta.events("delay").is_empty();
    assert!(
        support::wait_until(DEADLINE, failed_once),
        "no transient failure:\n{}",
        mta.log()
    );

    let v = queued(cfg, &api);
    assert_eq!(v["recipients"], 1, "{v}");
    let domain = &v["domains"][0];
    assert_eq!(domain["domain"], "held.test", "{v}");
    assert!(
        domain["last_reply"].as_str().unwrap_or("").contains("451"),
        "{v}"
    );
    let (code, table, err) = run(&["queue", "-c", cfg, "--api", &api], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("held.test") && table.contains("1 queued"),
        "{table}"
    );

    // Without flush the retry is 20 minutes away; flush makes it due now.
    sink.set_temp_fail(false);
    let (code, out, err) = run(&["flush", "held.test", "-c", cfg, "--api", &api], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1 "), "{out}");
    assert!(
        sink.wait_accepted(1, DEADLINE),
        "flushed message not delivered:\n{}",
        mta.log()
    );
    let m = &sink.accepted()[0];
    assert_eq!(m.rcpts, ["x@held.test"]);
    assert!(String::from_utf8_lossy(&m.data).contains("held body"));
    assert!(support::wait_until(
        DEADLINE,
        || queued(cfg, &api)["recipients"] == 0
    ));

    // A wrong token is refused.
    let (code, _, err) = run(&["queue", "--api", &api, "--token", "wrong"], None);
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
}

fn corpus(path: &str) -> String {
    format!("{}/crates/bounce/corpus/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bounce_parse_reads_a_dsn_and_an_arf_as_json() {
    let dsn = corpus("bounces/postfix/001.eml");
    let arf = corpus("arf/001.eml");
    let (code, out, err) = run(&["bounce", "parse", "--json", &dsn, &arf], None);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text = serde_json::to_string(&docs).unwrap();
    // Labels from crates/bounce/corpus/*/labels.tsv.
    assert!(text.contains("peggy135@example.org"), "{out}");
    assert!(
        text.contains("URLgfB0eKJkwreHBIgJLVH.KtP3skqoO6"),
        "token: {out}"
    );
    assert!(
        text.contains("frank314@shop.example.co.uk"),
        "ARF recipient: {out}"
    );
    assert!(text.contains("22"), "mailbox-full class: {out}");
}

#[test]
fn bounce_parse_reads_stdin_and_explains_in_text() {
    let raw = std::fs::read_to_string(corpus("bounces/postfix/001.eml")).unwrap();
    let (code, out, err) = run(&["bounce", "parse", "-"], Some(&raw));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("peggy135@example.org"), "{out}");
    assert!(
        out.to_lowercase().contains("mailbox full") || out.contains("22"),
        "{out}"
    );
}

#[test]
fn bounce_classify_uses_provider_rules_and_prints_json() {
    let (code, out, err) = run(
        &[
            "bounce",
            "classify",
            "--json",
            "--host",
            "gmail-smtp-in.l.google.com",
            "550-5.1.1 The email account that you tried to reach does not exist.",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["class"], 10, "{out}");
    assert_eq!(v["provider"], "gmail", "{out}");
}

/// GET over a plain socket (this file's tests are synchronous).
fn http_get(addr: std::net::SocketAddr, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: cartero\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn metrics_are_served_in_prometheus_format_and_count_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    let config = ConfigBuilder::new(&data)
        .route("metrics.test", sink.addr)
        .write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);
    let file = dir.path().join("m.eml");
    std::fs::write(&file, "From: a@src.test\r\nSubject: m\r\n\r\nbody\r\n").unwrap();
    let api = format!("http://{}", mta.http);
    let args = [
        "inject",
        file.to_str().unwrap(),
        "--from",
        "a@src.test",
        "--to",
        "y@metrics.test",
        "-c",
        config.to_str().unwrap(),
        "--api",
        &api,
    ];
    let (code, _, err) = run(&args, None);
    assert_eq!(code, 0, "{err}");
    let mut last = String::new();
    let delivered = support::wait_until(DEADLINE, || {
        last = http_get(mta.http, "/metrics", &mta.token());
        last.lines()
            .any(|l| l.starts_with("cartero_recipients_delivered_total") && l.ends_with(" 1"))
    });
    assert!(delivered, "{last}");
    assert!(last.contains("cartero_messages_accepted_total 1"), "{last}");
    assert!(
        last.contains("cartero_queue_scheduled_recipients"),
        "{last}"
    );
    // Without the token: 401, no metrics.
    let anon = http_get(mta.http, "/metrics", "wrong");
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
}
