//! Remote MTA mode, outside-in: two `cartero` processes on loopback — a campaign node
//! (`[campaign] mta = "http://…"`, no MTA of its own) and an MTA node whose durable webhook
//! posts its events back to the campaign node's `POST /api/v1/events` — and Postfix's
//! smtp-sink. Transactional calls keep being accepted while the MTA node is killed (SIGKILL)
//! and are delivered once it is back; the campaign node killed mid-outbox loses nothing either.
//! Every distinct call reaches the sink exactly once, every repeat gets the original id, every
//! status ends `sent`.

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use support::peers::{SMTP_SINK, SmtpSink, have};
use support::{ConfigBuilder, DEADLINE, Serve, campaign_json, free_port, wait_until};

const MTA_TOKEN: &str = "mta-node-token-for-the-test";

struct Nodes {
    dir: PathBuf,
    sink: SmtpSink,
    campaign_config: PathBuf,
    campaign_data: PathBuf,
    mta_config: PathBuf,
    mta_data: PathBuf,
}

impl Nodes {
    fn new(dir: &Path) -> Nodes {
        let sink = SmtpSink::start(&dir.join("dump"));
        let mta_data = dir.join("mta");
        std::fs::create_dir_all(&mta_data).unwrap();
        // The MTA node keeps the token it finds in its data directory.
        std::fs::write(mta_data.join("api-token"), MTA_TOKEN).unwrap();
        let campaign_data = dir.join("campaign");
        Nodes {
            dir: dir.to_path_buf(),
            sink,
            campaign_config: dir.join("campaign.toml"),
            campaign_data,
            mta_config: dir.join("mta.toml"),
            mta_data,
        }
    }

    /// The campaign node listens on a port fixed now: the MTA node's webhook names it.
    fn start_campaign(&self, mta_http: SocketAddr, http: SocketAddr) -> Serve {
        ConfigBuilder::new(&self.campaign_data)
            .http(http)
            .raw(&format!(
                "[campaign]\nmta = \"http://{mta_http}\"\nmta_token_file = {:?}\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n",
                self.mta_data.join("api-token").display().to_string()
            ))
            .write(&self.campaign_config);
        Serve::start(&self.campaign_config, &self.campaign_data)
    }

    fn start_mta(&self, http: SocketAddr, campaign: SocketAddr, campaign_token: &str) -> Serve {
        ConfigBuilder::new(&self.mta_data)
            .http(http)
            .route("dest.test", self.sink.addr)
            .raw(&format!(
                "[campaign]\nenabled = false\n\n[[events.webhooks]]\nurl = \"http://{campaign}/api/v1/events\"\n\
                 auth_header = \"Bearer {campaign_token}\"\nbatch_size = 200\nbatch_delay = \"50ms\"\n\
                 retry_base = \"100ms\"\nretry_max = \"500ms\"\nspool_dir = {:?}\n",
                self.dir.join("webhook").display().to_string()
            ))
            .write(&self.mta_config);
        Serve::start(&self.mta_config, &self.mta_data)
    }
}

fn http(
    node: &Serve,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    support::http_json(node, method, path, body, token, None)
}

fn call(i: usize) -> Value {
    json!({ "recipient": format!("r{i}@dest.test"), "data": { "n": i }, "idempotency_key": format!("call-{i}") })
}

/// Posts calls `range` in batches of 100, each batch with a repeat of its first call's key;
/// returns the ids by call number and checks every repeat got the original id.
fn post(node: &Serve, range: std::ops::Range<usize>, ids: &mut Vec<Value>) {
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(100) {
        let mut calls: Vec<Value> = chunk.iter().map(|i| call(*i)).collect();
        calls.push(call(chunk[0]));
        let (s, v) = http(
            node,
            "POST",
            "/api/v1/transactional/notice/batch",
            Some(json!({ "calls": calls })),
            Some(&node.token()),
        );
        assert_eq!(s, 202, "{v}");
        let results = v["results"].as_array().unwrap();
        for (i, r) in chunk.iter().zip(results) {
            assert_eq!(ids.len(), *i);
            assert_eq!(r["repeated"], false, "{r}");
            ids.push(r["id"].clone());
        }
        let repeat = results.last().unwrap();
        assert_eq!(
            (&repeat["id"], &repeat["repeated"]),
            (&ids[chunk[0]], &json!(true))
        );
    }
}

fn sent(node: &Serve) -> usize {
    let mut n = 0;
    let mut after: Option<i64> = None;
    loop {
        let mut args = vec![
            "transactional",
            "list",
            "--status",
            "sent",
            "--limit",
            "1000",
        ];
        let a;
        if let Some(x) = after {
            a = x.to_string();
            args.extend(["--after", &a]);
        }
        let v = campaign_json(node, &args);
        n += v["messages"].as_array().map_or(0, Vec::len);
        match v["next"].as_i64() {
            Some(x) => after = Some(x),
            None => return n,
        }
    }
}

fn pending(node: &Serve) -> u64 {
    campaign_json(node, &["transactional", "outbox"])["depth"]
        .as_u64()
        .unwrap_or(0)
}

/// Each call `0..n` at the sink: how many arrived not exactly once.
fn not_once(sink: &SmtpSink, n: usize) -> Vec<(usize, usize)> {
    let counts = sink.rcpt_counts();
    (0..n)
        .map(|i| {
            (
                i,
                counts.get(&format!("r{i}@dest.test")).copied().unwrap_or(0),
            )
        })
        .filter(|(_, c)| *c != 1)
        .collect()
}

#[test]
fn calls_survive_the_mta_node_and_the_campaign_node_being_killed() {
    if !have(SMTP_SINK, "postfix (smtp-sink)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nodes = Nodes::new(dir.path());
    let mta_http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let campaign_http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut campaign = nodes.start_campaign(mta_http, campaign_http);
    let token = campaign.token();
    let mut mta = nodes.start_mta(mta_http, campaign_http, &token);

    // The intake refuses posts without the campaign node's token, and malformed ones.
    let events = Some(json!([{ "type": "delivery" }]));
    assert_eq!(
        http(&campaign, "POST", "/api/v1/events", events.clone(), None).0,
        401
    );
    assert_eq!(
        http(
            &campaign,
            "POST",
            "/api/v1/events",
            events.clone(),
            Some(MTA_TOKEN)
        )
        .0,
        401
    );
    assert_eq!(
        http(
            &campaign,
            "POST",
            "/api/v1/events",
            Some(json!({"x": 1})),
            Some(&token)
        )
        .0,
        422
    );
    // The campaign node runs no MTA: no injection route.
    assert_eq!(
        http(
            &campaign,
            "POST",
            "/api/v1/messages",
            Some(json!({})),
            Some(&token)
        )
        .0,
        404
    );

    let (s, v) = http(
        &campaign,
        "PUT",
        "/api/v1/transactional/templates/notice",
        Some(json!({
        "from": "notices@src.test", "subject": "Notice {{ n }}", "text": "Number {{ n }}" })),
        Some(&token),
    );
    assert_eq!(s, 200, "{v}");
    let mut ids = Vec::new();
    post(&campaign, 0..100, &mut ids);
    assert!(
        wait_until(DEADLINE, || sent(&campaign) == 100),
        "first 100 not sent:\n{}\n{}",
        campaign.log(),
        mta.log()
    );

    // The MTA node dies; calls keep being accepted and wait in the outbox.
    mta.kill9();
    post(&campaign, 100..2100, &mut ids);
    assert!(pending(&campaign) > 0, "calls wait while the MTA is away");
    let mta = nodes.start_mta(mta_http, campaign_http, &token);
    assert!(
        wait_until(DEADLINE * 2, || sent(&campaign) == 2100),
        "not all sent after the MTA came back:\n{}",
        mta.log()
    );
    assert_eq!(
        not_once(&nodes.sink, 2100),
        vec![],
        "each call exactly once at the sink"
    );

    // The campaign node dies right after acknowledging calls, mid-outbox.
    post(&campaign, 2100..2600, &mut ids);
    campaign.kill9();
    let campaign = nodes.start_campaign(mta_http, campaign_http);
    let (s, v) = http(
        &campaign,
        "POST",
        "/api/v1/transactional/notice",
        Some(call(2599)),
        Some(&token),
    );
    assert_eq!(
        (s, &v["id"], v["repeated"].as_bool()),
        (202, &ids[2599], Some(true)),
        "{v}"
    );
    assert!(
        wait_until(DEADLINE * 2, || sent(&campaign) == 2600),
        "not all sent after the campaign node came back:\n{}",
        campaign.log()
    );
    assert_eq!(
        not_once(&nodes.sink, 2600),
        vec![],
        "each call exactly once at the sink"
    );
    assert_eq!(pending(&campaign), 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://{}/metrics", campaign.http))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    });
    assert!(
        metrics.contains("cartero_transactional_outbox_depth 0"),
        "{metrics}"
    );
    drop(mta);
}
