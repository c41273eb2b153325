//! Checks a configuration the way `serve` will use it — every file it names is read, every
//! rule compiled — so `cartero config check` and `serve` accept and refuse the same things.
//! Values serde accepts but that cannot work (zero connections, zero timeouts, factors out of
//! range) are problems; settings that work but are dangerous (relaying for the whole
//! Internet) are warnings, printed by `check` and logged by `serve`.

use crate::config::MtaConfig;
use std::time::Duration;

/// Everything wrong with a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigProblems(pub Vec<String>);

/// Validates `cfg`; returns the warnings when it can be used.
pub fn validate(cfg: &MtaConfig) -> Result<Vec<String>, ConfigProblems> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    values(cfg, &mut problems);
    files(cfg, &mut problems);
    for net in &cfg.smtp.relay_networks {
        if net.prefix_len() == 0 {
            warnings.push(format!(
                "smtp.relay_networks contains {net}: every client on the Internet may relay \
                 through this MTA without authenticating (an open relay)"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(warnings),
        false => Err(ConfigProblems(problems)),
    }
}

/// Numbers that deserialize but cannot work.
fn values(cfg: &MtaConfig, problems: &mut Vec<String>) {
    let mut at_least_one = |name: &str, v: u64| {
        if v == 0 {
            problems.push(format!("{name} = 0: must be at least 1"));
        }
    };
    let s = &cfg.smtp;
    at_least_one("smtp.max_connections", s.max_connections as u64);
    at_least_one(
        "smtp.max_connections_per_ip",
        s.max_connections_per_ip as u64,
    );
    at_least_one("smtp.max_recipients", s.max_recipients as u64);
    at_least_one("smtp.max_message_size", s.max_message_size as u64);
    at_least_one(
        "delivery.max_connections",
        u64::from(cfg.delivery.max_connections),
    );
    at_least_one(
        "delivery.retry.factor",
        u64::from(cfg.delivery.retry.factor),
    );
    let t = &cfg.delivery.timeouts;
    let durations: [(&str, Duration); 14] = [
        ("smtp.command_timeout", s.command_timeout),
        ("smtp.data_timeout", s.data_timeout),
        ("delivery.retry.initial", cfg.delivery.retry.initial),
        ("delivery.retry.max", cfg.delivery.retry.max),
        ("delivery.default_validity", cfg.delivery.default_validity),
        ("delivery.timeouts.connect", t.connect),
        ("delivery.timeouts.banner", t.banner),
        ("delivery.timeouts.ehlo", t.ehlo),
        ("delivery.timeouts.starttls", t.starttls),
        ("delivery.timeouts.mail", t.mail),
        ("delivery.timeouts.rcpt", t.rcpt),
        ("delivery.timeouts.data", t.data),
        ("delivery.timeouts.data_end", t.data_end),
        ("delivery.timeouts.idle", t.idle),
    ];
    for (name, d) in durations {
        if d.is_zero() {
            problems.push(format!("{name} = \"0s\": must be longer than zero"));
        }
    }
    let fractions = [
        ("delivery.retry.jitter", cfg.delivery.retry.jitter, true),
        (
            "shaping.adaptive.aimd.decrease_factor",
            cfg.shaping.adaptive.aimd.decrease_factor,
            false,
        ),
        (
            "shaping.adaptive.sweep.throttle_factor",
            cfg.shaping.adaptive.sweep.throttle_factor,
            false,
        ),
    ];
    for (name, v, zero_ok) in fractions {
        let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
        if !(low_ok && v <= 1.0) {
            let range = if zero_ok { "[0, 1]" } else { "(0, 1]" };
            problems.push(format!("{name} = {v}: must be in {range}"));
        }
    }
}

/// What `serve` reads and compiles at start, done the same way.
fn files(cfg: &MtaConfig, problems: &mut Vec<String>) {
    let mut check = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            problems.push(format!("{what}: {e}"));
        }
    };
    let clock = cartero_clock::system();
    let warming = crate::pools::Pools::warming(&cfg.delivery);
    check(
        "shaping",
        cartero_shaping::AdaptiveLimits::new(cfg.shaping.clone(), &warming, clock)
            .map(drop)
            .map_err(|e| e.to_string()),
    );
    check(
        "delivery",
        crate::pools::Pools::build(&cfg.delivery, &cfg.hostname)
            .map(drop)
            .map_err(|e| e.to_string()),
    );
    for (domain, target) in &cfg.delivery.routes {
        check(
            &format!("delivery.routes.{domain:?}"),
            crate::routing::parse_target(target, cfg.delivery.port)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    check("tls", tls(cfg));
    check(
        "smtp",
        crate::inbound::postmaster_target(&cfg.smtp, &cfg.hostname, &cfg.inmail.bounce_domains)
            .map(drop)
            .map_err(|e| e.to_string()),
    );
    for k in &cfg.dkim.keys {
        let r = std::fs::read_to_string(&k.key_file)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                cartero_dkim::SigningKey::from_pem(&k.domain, &k.selector, &pem)
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
        check(&format!("dkim key {}", k.key_file.display()), r);
    }
    if let Some(path) = &cfg.inmail.secret_file {
        let r = std::fs::metadata(path).map(drop).map_err(|e| e.to_string());
        check(&format!("inmail.secret_file {}", path.display()), r);
    }
    check(
        "bounce.rules_files",
        cartero_bounce::RuleClassifier::from_paths(&cfg.bounce.rules_files)
            .map(drop)
            .map_err(|e| e.to_string()),
    );
    check(
        "events.file",
        cfg.events.file.validate().map_err(|e| e.to_string()),
    );
    for (i, w) in cfg.events.webhooks.iter().enumerate() {
        check(
            &format!("events.webhooks[{i}]"),
            w.validate().map_err(|e| e.to_string()),
        );
    }
}

/// A configured certificate and key must load and match; a generated pair needs nothing.
fn tls(cfg: &MtaConfig) -> Result<(), String> {
    match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(cert), Some(key)) => crate::tls::server_config(cert, key)
            .map(drop)
            .map_err(|e| e.to_string()),
        (None, None) => Ok(()),
        _ => Err(crate::tls::TlsError::Incomplete.to_string()),
    }
}
