//! Outside-in, without a browser: the dashboard's login and session rules on a running
//! `cartero serve` with an operator account hashed by `cartero passwd`, over plain HTTP.

mod support;

use std::time::Duration;
use support::{ConfigBuilder, Serve, run};

struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

/// (status, Location, Set-Cookie values, body) of one request.
type Answer = (u16, String, Vec<String>, String);

impl Http {
    fn new(node: &Serve) -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            // Redirects are checked, not followed.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", node.http),
        }
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        self.rt.block_on(async {
            let mut req = self
                .client
                .request(method.parse().unwrap(), format!("{}{path}", self.base))
                .timeout(Duration::from_secs(60));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if !body.is_empty() {
                req = req.body(body.to_string());
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let cookies = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            (
                status,
                location,
                cookies,
                r.text().await.unwrap_or_default(),
            )
        })
    }
}

fn cookie(set: &[String], name: &str) -> String {
    set.iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name} in {set:?}"))
        .to_string()
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("{page}")) + marker.len();
    page[at..].split('"').next().unwrap_or("").to_string()
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[test]
fn an_operator_account_logs_in_and_its_session_acts_on_the_api_only_with_the_csrf_token() {
    let (code, hash, err) = run(&["passwd"], Some("correct horse\n"));
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data)
        .raw(&format!(
            "[dashboard]\nmax_failed_logins = 2\n[[dashboard.operators]]\nname = \"ana\"\npassword_hash = {:?}\n",
            hash.trim()
        ))
        .write(&dir.path().join("cartero.toml"));
    let node = Serve::start(&config, &data);
    let http = Http::new(&node);

    let (status, location, _, _) = http.send("GET", "/ui/quarantine", &[], "");
    assert_eq!(
        (status, location.as_str()),
        (303, "/ui/login?next=/ui/quarantine")
    );
    let (status, _, _, body) = http.send("GET", "/api/v1/deliveries", &[], "");
    assert_eq!(status, 401, "{body}");

    let login = |password: &str| {
        let (_, _, set, page) = http.send("GET", "/ui/login?next=/ui/quarantine", &[], "");
        let login_cookie = cookie(&set, "cartero_login");
        let form = format!(
            "user=ana&password={password}&csrf={}&next={}",
            hidden(&page, "csrf"),
            hidden(&page, "next")
        );
        http.send(
            "POST",
            "/ui/login",
            &[FORM, ("cookie", &login_cookie)],
            &form,
        )
    };
    let (status, _, set, _) = login("wrong");
    assert_eq!(status, 401);
    assert!(!set.iter().any(|c| c.starts_with("cartero_session=")));
    let (status, location, set, _) = login("correct+horse");
    assert_eq!((status, location.as_str()), (303, "/ui/quarantine"));
    let session = cookie(&set, "cartero_session");
    assert!(set.iter().any(|c| c.starts_with("cartero_session=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Strict")));

    let (status, _, _, page) = http.send("GET", "/ui/quarantine", &[("cookie", &session)], "");
    assert_eq!(status, 200);
    assert!(page.contains("<span class=\"who\">ana</span>"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _, _, _) = http.send("GET", "/api/v1/deliveries", &[("cookie", &session)], "");
    assert_eq!(status, 200, "a session reads the API");
    let list = r#"[{"email": "ana@dest.test"}]"#;
    let add = "/api/v1/lists/spring/recipients";
    let json = ("content-type", "application/json");
    let (status, _, _, _) = http.send("POST", add, &[json, ("cookie", &session)], list);
    assert_eq!(status, 401, "no CSRF token: refused");
    let wrong = [json, ("cookie", &session), ("x-csrf-token", "0000")];
    assert_eq!(http.send("POST", add, &wrong, list).0, 401, "a wrong token");
    let right = [json, ("cookie", &session), ("x-csrf-token", &csrf)];
    let (status, _, _, body) = http.send("POST", add, &right, list);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"added\":1"), "{body}");

    // The audit trail names the session's operator, whatever the body says; with the token a
    // client cannot claim to be an operator through the server's own header.
    let release = r#"{"actor": "mallory", "why": "test", "filter": {"domain": "none.test"}}"#;
    let path = "/api/v1/quarantine/release";
    let (status, _, _, body) = http.send("POST", path, &right, release);
    assert_eq!(status, 200, "{body}");
    let token = format!("Bearer {}", node.token());
    let spoof = [
        json,
        ("authorization", token.as_str()),
        ("x-cartero-operator", "ana"),
    ];
    let (status, _, _, body) = http.send("POST", path, &spoof, release);
    assert_eq!(status, 200, "{body}");
    let (_, _, _, audit) = http.send(
        "GET",
        "/api/v1/quarantine/releases",
        &[("authorization", &token)],
        "",
    );
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(
        audit[0]["actor"], "mallory",
        "token: the body's actor, the header dropped"
    );
    assert_eq!(audit[1]["actor"], "ana", "session: its operator");

    // The success forgot the first failure; two more reach max_failed_logins = 2, and the
    // right password is refused now.
    assert_eq!(login("wrong").0, 401);
    assert_eq!(login("wrong").0, 401);
    assert_eq!(login("correct+horse").0, 429);
    // The open session is not affected by the lockout; logout ends it.
    let (status, location, _, _) = http.send(
        "POST",
        "/ui/logout",
        &[FORM, ("cookie", &session)],
        &format!("csrf={csrf}"),
    );
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    let (status, _, _, _) = http.send("GET", "/api/v1/deliveries", &[("cookie", &session)], "");
    assert_eq!(status, 401, "the session ended");
    assert!(
        !node.log().contains("correct horse"),
        "the password is never logged"
    );
}
