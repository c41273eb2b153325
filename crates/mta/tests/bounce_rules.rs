//! `[bounce] rules_files`: operator rules are used by delivery, and a broken file stops the start.

mod support;

use cartero_dns::testing::TestDnsServer;
use cartero_events::EventType;
use cartero_mta::{Mta, StartOptions};
use cartero_smtp::Reply;
use support::{Env, Rules, example_zone, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rules_file_stops_the_start_with_file_and_reason() {
    let dns = TestDnsServer::start(vec![example_zone()]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("mine.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"bad\"\ntext = \"(unclosed\"\nclass = 10\n",
    )
    .unwrap();
    let mut cfg = test_config(dir.path(), dns.addr(), 9);
    cfg.bounce.rules_files = vec![rules];
    let err = Mta::start(cfg, StartOptions::default())
        .await
        .err()
        .expect("start must fail");
    let text = err.to_string();
    assert!(text.contains("mine.toml") && text.contains("bad"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rules_decide_the_class_of_a_delivery_failure() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("mine.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"ops-funny-wording\"\ntext = \"(?i)wombat\"\nclass = 52\n",
    )
    .unwrap();
    let mut env = Env::start(vec![], |c| c.bounce.rules_files = vec![rules.clone()]).await;
    env.sink.set_rules(Rules::Always(Reply::with_code(
        550,
        (5, 0, 0),
        "no wombats here",
    )));
    env.inject(&["x@example.test"]).await;
    let b = env
        .events
        .wait_rcpt(EventType::Bounce, "x@example.test")
        .await;
    assert_eq!(b.bounce_class, Some(52));
    assert_eq!(b.reason.as_deref(), Some("ops-funny-wording"));
}
