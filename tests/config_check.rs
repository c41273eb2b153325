//! Issue 15: `cartero config check` passed values `serve` rejects and nonsense it should refuse,
//! repeated error texts and printed PEM errors as byte arrays.

mod support;

use support::run;

/// Runs `config check` on `text`; (exit code, stdout, stderr).
fn check(text: &str, files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = text.to_string();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        text = text.replace(&format!("@{name}"), path.to_str().unwrap());
    }
    let file = dir.path().join("cartero.toml");
    std::fs::write(&file, text).unwrap();
    run(&["config", "check", file.to_str().unwrap()], None)
}

#[test]
fn config_check_refuses_a_bad_tls_key_that_serve_would_refuse() {
    let (code, out, err) = check(
        "[tls]\ncert = \"@cert.pem\"\nkey = \"@key.pem\"\n",
        &[
            ("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64 !!\n"),
            ("key.pem", "garbage\n"),
        ],
    );
    assert_ne!(code, 0, "accepted: {out}");
    assert!(err.contains("tls") && err.contains("cert.pem"), "{err}");
    assert!(
        !err.contains("[45, 45"),
        "PEM error printed as a byte array: {err}"
    );
}

#[test]
fn config_check_refuses_a_missing_secret_file() {
    let (code, _, err) = check(
        "[inmail]\nbounce_domains = [\"bounces.test\"]\nsecret_file = \"/nonexistent/secret\"\n",
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("inmail.secret_file"), "{err}");
}

#[test]
fn config_check_refuses_zero_connections_zero_timeouts_and_factors_out_of_range() {
    let (code, _, err) = check(
        "[smtp]\nmax_connections = 0\ncommand_timeout = \"0s\"\n\
         [delivery]\nmax_connections = 0\n[delivery.retry]\njitter = -0.5\n\
         [shaping.adaptive.aimd]\ndecrease_factor = 1.5\n",
        &[],
    );
    assert_ne!(code, 0);
    for what in [
        "smtp.max_connections = 0",
        "smtp.command_timeout",
        "delivery.max_connections = 0",
        "delivery.retry.jitter = -0.5",
        "decrease_factor = 1.5",
    ] {
        assert!(err.contains(what), "{what} not reported: {err}");
    }
}

#[test]
fn config_check_warns_loudly_about_relaying_for_the_whole_internet() {
    let (code, out, err) = check("[smtp]\nrelay_networks = [\"0.0.0.0/0\"]\n", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "ok");
    assert!(
        err.contains("warning") && err.contains("open relay") && err.contains("0.0.0.0/0"),
        "{err}"
    );
}

#[test]
fn config_check_error_text_is_not_repeated() {
    let (code, _, err) = check(
        "[dkim]\nkeys = [{ domain = \"a.test\", selector = \"s\", key_file = \"@k.pem\" }]\n",
        &[("k.pem", "not a key\n")],
    );
    assert_ne!(code, 0);
    let first = err.lines().find(|l| l.contains("k.pem")).unwrap_or("");
    let detail = first.rsplit(": ").next().unwrap_or("");
    assert!(!detail.is_empty(), "{err}");
    assert_eq!(err.matches(detail).count(), 1, "repeated: {err}");
}

#[test]
fn config_check_refuses_a_postmaster_that_is_not_a_mailbox() {
    let (code, _, err) = check("[smtp]\npostmaster = \"not an address\"\n", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("smtp.postmaster"), "{err}");
}
