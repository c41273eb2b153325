//! Issue 15: spool recovery that skips a damaged record must name the lost message and report
//! each recipient it cannot restore, so nothing disappears silently.

mod support;

use cartero_events::EventType;
use cartero_shaping::Scope;
use support::{Env, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_spool_record_is_named_and_reported_not_silently_dropped() {
    let mut env = Env::start(vec![], |_| {}).await;
    // Hold everything so the messages are still queued at the restart.
    let held = Scope::Domain("example.test".into());
    env.mta.suspend(held.clone(), None, "test".into()).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let to = format!("user{n}@example.test");
        let injected = env
            .inject_with(&[to.as_str()], |i| {
                i.body = message(&to, &format!("damaged-{n}"));
            })
            .await;
        ids.push(injected.message_id);
    }
    env.mta.shutdown().await;

    let segments = env.cfg.data_dir.join("spool").join("segments");
    let seg = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment file");
    let mut data = std::fs::read(&seg).unwrap();
    let needle = b"Subject: damaged-1";
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("message 1 in the segment");
    data[at + 3] ^= 0x20;
    std::fs::write(&seg, &data).unwrap();

    env.restart().await;
    let lost = env.events.wait_for(EventType::Bounce, 1).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].message_id.as_deref(), Some(ids[1].as_str()));
    assert_eq!(lost[0].reason.as_deref(), Some("spool:lost"));
    assert_eq!(lost[0].bounce_class, Some(1));
    // The two undamaged messages are still queued and go out once resumed.
    env.mta.resume(held).await;
    let delivered = env.events.wait_for(EventType::Delivery, 2).await;
    let mut got: Vec<_> = delivered
        .iter()
        .filter_map(|e| e.message_id.clone())
        .collect();
    got.sort();
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(got, want);
}
