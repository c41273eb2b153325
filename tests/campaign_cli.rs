//! Outside-in: a campaign from a CSV file to final KPIs with the `cartero` binary's own verbs,
//! delivered to Postfix's smtp-sink on loopback.

mod support;

use support::peers::{SMTP_SINK, SmtpSink, have};
use support::{ConfigBuilder, DEADLINE, Serve, campaign_json, wait_until};

const N: usize = 20;

#[test]
fn a_csv_campaign_ends_sent_at_smtp_sink_with_final_kpis() {
    if !have(SMTP_SINK, "postfix (smtp-sink)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&dir.path().join("dump"));
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);

    let mut csv = String::from("email,first_name\n");
    for i in 0..N {
        csv.push_str(&format!("user{i}@dest.test,Ana{i}\n"));
    }
    csv.push_str("not-an-address,Bad\nuser3@DEST.TEST,Again\n");
    let csv_path = dir.path().join("list.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let text = dir.path().join("body.txt");
    std::fs::write(&text, "Hello {{ first_name }}, this is for {{ email }}.\n").unwrap();

    let imported = campaign_json(
        &mta,
        &[
            "recipients",
            "import",
            csv_path.to_str().unwrap(),
            "--list",
            "spring",
        ],
    );
    assert_eq!(imported["imported"], N as u64 + 2);
    let d = campaign_json(
        &mta,
        &[
            "delivery",
            "create",
            "--name",
            "spring",
            "--from",
            "News <news@src.test>",
            "--subject",
            "Hi {{ first_name }}",
            "--text",
            text.to_str().unwrap(),
            "--list",
            "spring",
        ],
    );
    let id = d["id"].as_i64().unwrap().to_string();
    let counts = campaign_json(&mta, &["delivery", "analyze", &id]);
    assert_eq!(counts["to_deliver"], N as u64);
    assert_eq!(
        (
            counts["invalid_syntax"].as_u64(),
            counts["duplicate"].as_u64()
        ),
        (Some(1), Some(1))
    );
    campaign_json(&mta, &["delivery", "start", &id]);

    let status = || campaign_json(&mta, &["delivery", "status", &id]);
    assert!(
        wait_until(DEADLINE, || status()["delivery"]["state"] == "finished"),
        "not finished: {}\n{}",
        status(),
        mta.log()
    );
    let st = status();
    assert_eq!(st["kpis"]["sent"], N as u64, "{st}");
    assert_eq!(st["kpis"]["ignored"], 2);
    assert_eq!(st["final"], true);
    assert_eq!(st["efs"]["success"]["count"], N as u64, "{st}");

    let dumps = sink.dumps();
    assert_eq!(dumps.len(), N, "each recipient once at smtp-sink");
    for i in 0..N {
        let to = format!("X-Rcpt-Args: <user{i}@dest.test>");
        let dump = dumps
            .iter()
            .find(|d| d.contains(&to))
            .unwrap_or_else(|| panic!("{to}"));
        assert!(dump.contains(&format!("Subject: Hi Ana{i}")), "{dump}");
        assert!(
            dump.contains(&format!("Hello Ana{i}, this is for user{i}@dest.test.")),
            "{dump}"
        );
    }
    let logs = campaign_json(&mta, &["delivery", "logs", &id, "--status", "sent"]);
    assert_eq!(logs["rows"].as_array().unwrap().len(), N);
}

/// Python's e-mail parser reads a message's subject, text and HTML bodies, decoded.
fn python_decode(eml: &[u8]) -> serde_json::Value {
    let script = "import sys, json, email, email.policy\n\
        m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)\n\
        t = m.get_body(('plain',)); h = m.get_body(('html',))\n\
        print(json.dumps({'subject': str(m['subject']), 'to': str(m['to']),\n\
          'text': t.get_content() if t else None, 'html': h.get_content() if h else None}))\n";
    let mut child = std::process::Command::new(support::peers::PYTHON)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(eml).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_personalized_html_campaign_reaches_aiosmtpd_and_python_decodes_it_exactly() {
    if !support::peers::have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let peer = support::peers::Aiosmtpd::start(&dir.path().join("got"), 0.0);
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data)
        .route("dest.test", peer.addr)
        .write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);
    let names = ["Zoë", "José & <b>", "Ana"];
    let mut csv = String::from("email,first_name\n");
    for (i, n) in names.iter().enumerate() {
        csv.push_str(&format!("u{i}@dest.test,\"{n}\"\n"));
    }
    let csv_path = dir.path().join("list.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let (text, html) = (dir.path().join("t.txt"), dir.path().join("h.html"));
    std::fs::write(&text, "Hola {{ first_name }}, ¿qué tal?\n").unwrap();
    std::fs::write(&html, "<p>Hola {{ first_name }}</p>\n").unwrap();
    campaign_json(
        &mta,
        &[
            "recipients",
            "import",
            csv_path.to_str().unwrap(),
            "--list",
            "es",
        ],
    );
    let d = campaign_json(
        &mta,
        &[
            "delivery",
            "create",
            "--name",
            "es",
            "--from",
            "Noticias <news@src.test>",
            "--subject",
            "¡Hola {{ first_name }}!",
            "--text",
            text.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--list",
            "es",
        ],
    );
    let id = d["id"].as_i64().unwrap().to_string();
    campaign_json(&mta, &["delivery", "analyze", &id]);
    campaign_json(&mta, &["delivery", "start", &id]);
    assert!(
        wait_until(DEADLINE, || campaign_json(
            &mta,
            &["delivery", "status", &id]
        )["delivery"]["state"]
            == "finished"),
        "{}",
        mta.log()
    );
    let got = peer.messages();
    assert_eq!(got.len(), names.len());
    for (i, n) in names.iter().enumerate() {
        let rcpt = format!("u{i}@dest.test");
        let (_, eml) = got
            .iter()
            .find(|(env, _)| env["rcpt_tos"][0] == rcpt.as_str())
            .unwrap_or_else(|| panic!("{rcpt} missing"));
        let v = python_decode(eml);
        assert_eq!(v["subject"], format!("¡Hola {n}!"), "{v}");
        assert_eq!(v["to"], rcpt);
        // A base64 part keeps the CRLF line ends of the message inside it (the encoding is
        // the renderer's choice per part): compare the text, not the line ends.
        let text = v["text"].as_str().unwrap_or("").replace("\r\n", "\n");
        assert_eq!(text, format!("Hola {n}, ¿qué tal?\n"), "{v}");
        let escaped = n
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let html = v["html"].as_str().unwrap_or("").replace("\r\n", "\n");
        assert_eq!(html, format!("<p>Hola {escaped}</p>\n"), "{v}");
    }
}
