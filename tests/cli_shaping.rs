//! `cartero shaping`, `suspend`, `resume` and configuration reload (SIGHUP and
//! `cartero shaping reload`) against a running `cartero serve`. Every route is static and DNS
//! points at a dead loopback port: nothing here can leave the machine.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use support::{ConfigBuilder, DEADLINE, Serve, run};

fn config(data: &std::path::Path) -> ConfigBuilder {
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    ConfigBuilder::new(data).route("*", nowhere)
}

/// Runs an operator command against `mta`; returns (exit code, stdout, stderr).
fn op(mta: &Serve, args: &[&str]) -> (i32, String, String) {
    let api = format!("http://{}", mta.http);
    let token = mta.token();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--api", &api, "--token", &token]);
    run(&all, None)
}

fn view(mta: &Serve) -> serde_json::Value {
    let (code, out, err) = op(mta, &["shaping", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn sighup(mta: &Serve) {
    let ok = Command::new("kill")
        .args(["-HUP", &mta.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -HUP failed");
}

/// Log lines (JSON) whose message is `message`, as parsed objects.
fn logged(mta: &Serve, message: &str) -> Vec<serde_json::Value> {
    mta.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[test]
fn suspend_show_and_resume_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(&data).write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&cfg, &data);

    let (code, out, err) = op(
        &mta,
        &[
            "suspend",
            "domain:x.test",
            "--for",
            "1h",
            "--reason",
            "maint",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("suspended domain:x.test until 20"), "{out}");

    let (code, table, err) = op(&mta, &["shaping"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.starts_with("adaptive shaping: on"), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("domain:x.test"))
        .unwrap_or_else(|| panic!("no suspension row:\n{table}"));
    assert!(
        line.contains("until 20") && line.ends_with("maint"),
        "{line}"
    );

    let v = view(&mta);
    let s = &v["suspensions"][0];
    assert_eq!(s["scope"], "domain:x.test", "{v}");
    assert_eq!(s["reason"], "maint", "{v}");
    let (until, since) = (s["until"].as_u64().unwrap(), s["since"].as_u64().unwrap());
    // `until` is computed when the API reads the request, `since` when the suspension is
    // applied a moment later (another clock read): an hour, less the time in between.
    let lasts = until.checked_sub(since).expect("until after since");
    assert!((3_590_000..=3_600_000).contains(&lasts), "{lasts} ms: {v}");

    let (code, out, err) = op(&mta, &["resume", "domain:x.test"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "resumed domain:x.test");
    assert_eq!(view(&mta)["suspensions"], serde_json::json!([]));

    // Errors exit non-zero with the API's message.
    let (code, _, err) = op(&mta, &["resume", "domain:x.test"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("404") && err.contains("not suspended"),
        "{err}"
    );
    let (code, _, err) = op(&mta, &["suspend", "planet:mars"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("400") && err.contains("unknown scope"),
        "{err}"
    );
    let (code, _, err) = op(&mta, &["suspend", "domain:x.test", "--for", "soon"]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid duration"), "{err}");
    assert_eq!(view(&mta)["suspensions"], serde_json::json!([]));
}

#[test]
fn sighup_and_shaping_reload_keep_a_bad_configuration_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("cartero.toml");
    let good = config(&data);
    let cfg = good.write(&path);
    let mta = Serve::start(&cfg, &data);
    assert_eq!(view(&mta)["adaptive"], true);

    // A syntax error: SIGHUP logs it and keeps the running configuration.
    std::fs::write(
        &path,
        good.text() + "\n[shaping.adaptive\nenabled = false\n",
    )
    .unwrap();
    sighup(&mta);
    let kept = "reload failed: keeping the running configuration";
    assert!(
        support::wait_until(DEADLINE, || !logged(&mta, kept).is_empty()),
        "no reload failure logged:\n{}",
        mta.log()
    );
    let error = logged(&mta, kept)[0]["fields"]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        error.contains("cartero.toml") && error.contains("line"),
        "{error}"
    );
    assert_eq!(view(&mta)["adaptive"], true);

    // The same file through the API: non-zero exit with file and line.
    let (code, _, err) = op(&mta, &["shaping", "reload"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cartero.toml") && err.contains("line") && err.contains("keeping"),
        "{err}"
    );

    // A valid change: SIGHUP applies it.
    let reloaded = "shaping configuration reloaded";
    let off = good.raw("[shaping.adaptive]\nenabled = false");
    off.write(&path);
    sighup(&mta);
    assert!(
        support::wait_until(DEADLINE, || !logged(&mta, reloaded).is_empty()),
        "no reload logged:\n{}",
        mta.log()
    );
    assert_eq!(view(&mta)["adaptive"], false);

    // And back on through `cartero shaping reload`.
    config(&data).write(&path);
    let (code, out, err) = op(&mta, &["shaping", "reload"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "shaping configuration reloaded");
    assert_eq!(view(&mta)["adaptive"], true);
    // The log is read from stderr by another thread, which may lag behind the API's answer.
    assert!(
        support::wait_until(DEADLINE, || logged(&mta, reloaded).len() >= 2),
        "second reload not logged:\n{}",
        mta.log()
    );
    assert_eq!(logged(&mta, reloaded).len(), 2, "{}", mta.log());
}
