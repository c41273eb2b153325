//! Remote MTA mode over HTTPS with a private CA, outside-in: a campaign node and an MTA node,
//! each serving its API over TLS with a certificate issued by a CA made for the test. The
//! campaign node reaches the MTA with `[campaign] mta_ca_file`, the MTA's webhook reaches the
//! campaign node's event intake with `ca_file`. Without the CA the hand-overs fail (the calls
//! wait in the outbox, nothing is lost); with it every call is delivered once and ends `sent`.

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::peers::{SMTP_SINK, SmtpSink, have};
use support::{ConfigBuilder, DEADLINE, Serve, free_port, wait_until};

const MTA_TOKEN: &str = "mta-node-token-for-the-tls-test";

/// The test's CA and a server certificate it issued for 127.0.0.1 and localhost.
struct Pki {
    ca: PathBuf,
    /// The server's chain (its certificate, then the CA's) and key.
    chain: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cartero test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let p = Pki {
        ca: dir.join("ca.pem"),
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&p.ca, ca.pem()).unwrap();
    std::fs::write(&p.chain, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

fn tls_section(p: &Pki) -> String {
    format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        p.chain.display().to_string(),
        p.key.display().to_string()
    )
}

/// A client that trusts the test CA, as an operator's would.
fn client(p: &Pki) -> reqwest::Client {
    let pem = std::fs::read(&p.ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn https(
    c: &reqwest::Client,
    node: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = c
            .request(method.parse().unwrap(), format!("https://{node}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

fn campaign_config(dir: &Path, p: &Pki, mta_http: SocketAddr, http: SocketAddr, ca: bool) {
    let ca_line = match ca {
        true => format!("mta_ca_file = {:?}\n", p.ca.display().to_string()),
        false => String::new(),
    };
    ConfigBuilder::new(&dir.join("campaign"))
        .http(http)
        .http_line("tls = true")
        .raw(&tls_section(p))
        .raw(&format!(
            "[campaign]\nmta = \"https://{mta_http}\"\nmta_token_file = {:?}\n{ca_line}\
             retry_min = \"50ms\"\nretry_max = \"200ms\"\n",
            dir.join("mta").join("api-token").display().to_string()
        ))
        .write(&dir.join("campaign.toml"));
}

fn sent(c: &reqwest::Client, node: &Serve) -> usize {
    let path = "/api/v1/transactional/messages?status=sent&limit=1000";
    let (s, v) = https(c, node.http, "GET", path, None, &node.token());
    assert_eq!(s, 200, "{v}");
    v["messages"].as_array().map_or(0, Vec::len)
}

#[test]
fn remote_mode_over_https_trusts_a_private_ca_both_ways() {
    if !have(SMTP_SINK, "postfix (smtp-sink)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pki(d);
    let c = client(&p);
    let sink = SmtpSink::start(&d.join("dump"));
    std::fs::create_dir_all(d.join("mta")).unwrap();
    std::fs::write(d.join("mta").join("api-token"), MTA_TOKEN).unwrap();
    let mta_http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let campaign_http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    // First without the CA: the campaign node cannot verify the MTA's certificate.
    campaign_config(d, &p, mta_http, campaign_http, false);
    let mut campaign = Serve::start(&d.join("campaign.toml"), &d.join("campaign"));
    let token = campaign.token();
    ConfigBuilder::new(&d.join("mta"))
        .http(mta_http)
        .http_line("tls = true")
        .route("dest.test", sink.addr)
        .raw(&tls_section(&p))
        .raw(&format!(
            "[campaign]\nenabled = false\n\n[[events.webhooks]]\nurl = \"https://{campaign_http}/api/v1/events\"\n\
             auth_header = \"Bearer {token}\"\nca_file = {:?}\nbatch_size = 50\nbatch_delay = \"50ms\"\n\
             retry_base = \"100ms\"\nretry_max = \"500ms\"\nspool_dir = {:?}\n",
            p.ca.display().to_string(),
            d.join("webhook").display().to_string()
        ))
        .write(&d.join("mta.toml"));
    let _mta = Serve::start(&d.join("mta.toml"), &d.join("mta"));

    let template =
        json!({"from": "notices@src.test", "subject": "Notice {{ n }}", "text": "N {{ n }}"});
    let path = "/api/v1/transactional/templates/notice";
    let (s, v) = https(&c, campaign_http, "PUT", path, Some(template), &token);
    assert_eq!(s, 200, "{v}");
    let calls: Vec<Value> = (0..20)
        .map(|i| json!({"recipient": format!("r{i}@dest.test"), "data": {"n": i}, "idempotency_key": format!("tls-{i}")}))
        .collect();
    let batch = "/api/v1/transactional/notice/batch";
    let (s, v) = https(
        &c,
        campaign_http,
        "POST",
        batch,
        Some(json!({"calls": calls[..1]})),
        &token,
    );
    assert_eq!(s, 202, "{v}");
    assert!(
        wait_until(DEADLINE, || campaign.log().contains("hand-over failed")),
        "no failed hand-over logged:\n{}",
        campaign.log()
    );
    let (_, outbox) = https(
        &c,
        campaign_http,
        "GET",
        "/api/v1/transactional/outbox",
        None,
        &token,
    );
    assert_eq!(outbox["depth"], 1, "the call waits: {outbox}");
    assert_eq!(sink.rcpt_counts().len(), 0, "nothing reached the sink");

    // With the CA: the waiting call and the rest go, and their events come back over HTTPS.
    campaign.terminate(DEADLINE);
    campaign_config(d, &p, mta_http, campaign_http, true);
    let campaign = Serve::start(&d.join("campaign.toml"), &d.join("campaign"));
    let (s, v) = https(
        &c,
        campaign_http,
        "POST",
        batch,
        Some(json!({"calls": calls[1..]})),
        &token,
    );
    assert_eq!(s, 202, "{v}");
    assert!(
        wait_until(DEADLINE, || sent(&c, &campaign) == 20),
        "not every call ended sent ({}):\n{}",
        sent(&c, &campaign),
        campaign.log()
    );
    let counts = sink.rcpt_counts();
    assert_eq!(counts.len(), 20, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "each call once: {counts:?}"
    );
}
