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
