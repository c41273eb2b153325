//! Per-destination delivery policy at the MTA level: a domain that requires TLS is never sent
//! in plain text, and delivery binds the configured egress source address.

mod support;

use cartero_events::EventType;
use cartero_shaping::LimitsSpec;
use cartero_smtp::io::TlsMode;
use support::Env;

/// The sink offers no STARTTLS: a domain configured `tls = "required"` must defer, not send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_requiring_tls_is_deferred_when_the_server_offers_none() {
    let mut env = Env::start(vec![], |c| {
        c.shaping.domains.insert(
            "example.test".into(),
            LimitsSpec {
                tls: Some(TlsMode::Required),
                ..LimitsSpec::default()
            },
        );
    })
    .await;
    env.inject(&["secret@example.test"]).await;
    let d = env
        .events
        .wait_rcpt(EventType::Delay, "secret@example.test")
        .await;
    let why = d.raw_reason.unwrap_or_default().to_lowercase();
    assert!(why.contains("tls"), "{why}");
    assert!(env.sink.messages().is_empty(), "sent in plain text");
}

/// `delivery.sources[0].ip` is the local address outgoing connections are bound to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_binds_the_configured_source_address() {
    let mut env = Env::start(vec![], |c| {
        c.delivery.sources[0].ip = Some("127.0.0.2".parse().unwrap());
    })
    .await;
    env.inject(&["bound@example.test"]).await;
    let d = env
        .events
        .wait_rcpt(EventType::Delivery, "bound@example.test")
        .await;
    assert_eq!(d.sending_ip.as_deref(), Some("127.0.0.2"));
    let m = env.sink.messages();
    assert_eq!(m[0].peer.ip().to_string(), "127.0.0.2");
}
