//! Issue 15: spool segments, journals and the event log were created 0644, so queued mail and
//! addresses were readable by every local user.

mod support;

use cartero_events::EventType;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::Env;

/// Every file and directory below `dir`, with its permission bits.
fn modes(dir: &Path, out: &mut Vec<(String, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        out.push((
            entry.path().display().to_string(),
            meta.permissions().mode() & 0o777,
        ));
        if meta.is_dir() {
            modes(&entry.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_journal_and_event_log_are_not_readable_by_other_users() {
    let mut env = Env::start(vec![], |c| c.events.log_file = true).await;
    env.inject(&["alice@example.test", "bob@example.test"])
        .await;
    env.events.wait_for(EventType::Delivery, 2).await;
    env.mta.shutdown().await;

    let mut all = Vec::new();
    modes(&env.cfg.data_dir, &mut all);
    let names: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [".seg", ".jnl", "events.jsonl", "api-token"] {
        assert!(
            names.iter().any(|n| n.ends_with(expected)),
            "{expected} among {names:?}"
        );
    }
    let data_dir_mode = std::fs::metadata(&env.cfg.data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(data_dir_mode & 0o077, 0, "data_dir is {data_dir_mode:o}");
    // A certificate is public by nature; everything else is the MTA's alone.
    let open: Vec<_> = all
        .iter()
        .filter(|(p, m)| m & 0o077 != 0 && !p.ends_with("cert.pem"))
        .collect();
    assert!(open.is_empty(), "readable by group or others: {open:?}");
}
