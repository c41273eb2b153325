//! `[http] tls = true`: the API and the dashboard over HTTPS with the generated certificate,
//! and the operator CLI trusting it from the config. Plain HTTP to that port gets no answer.

mod support;

use std::time::Duration;
use support::{ConfigBuilder, Serve, run};

#[test]
fn the_http_listener_serves_https_and_the_cli_and_dashboard_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data)
        .http_line("tls = true")
        .write(&dir.path().join("cartero.toml"));
    let node = Serve::start(&config, &data);
    let pem = std::fs::read(data.join("tls").join("cert.pem")).unwrap();
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
        builder = builder.add_root_certificate(c);
    }
    let https = builder.build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = node.http.port();
    let get = |client: &reqwest::Client, url: String, bearer: bool| {
        rt.block_on(async {
            let mut req = client.get(url).timeout(Duration::from_secs(20));
            if bearer {
                req = req.bearer_auth(node.token());
            }
            req.send().await
        })
    };

    let r = get(&https, format!("https://127.0.0.1:{port}/healthz"), false).unwrap();
    assert_eq!(r.status(), 200, "the certificate names 127.0.0.1");
    let r = get(
        &https,
        format!("https://localhost:{port}/api/v1/queue"),
        true,
    )
    .unwrap();
    assert_eq!(r.status(), 200);
    let plain = reqwest::Client::new();
    let r = get(&plain, format!("http://127.0.0.1:{port}/healthz"), false);
    assert!(
        r.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP to the HTTPS port: {r:?}"
    );

    // The dashboard's cookies are Secure over HTTPS even though secure_cookie is off.
    let r = get(&https, format!("https://127.0.0.1:{port}/ui/login"), false).unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // The operator CLI trusts the certificate the config names (here the generated one).
    let api = format!("https://127.0.0.1:{port}");
    let args = ["queue", "--config", config.to_str().unwrap(), "--api", &api];
    let (code, out, err) = run(&args, None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(node.log().contains("\"tls\":true"), "{}", node.log());
}
