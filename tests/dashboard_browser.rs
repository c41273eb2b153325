//! Outside-in: the dashboard of a running `cartero serve`, driven in a real headless Chromium.
//! An operator logs in, creates, analyzes and starts a small delivery to two loopback sinks
//! (one holds its answers, the other refuses with 550 5.1.1), pauses and resumes it, watches
//! the KPIs and the log statuses change without a reload until the delivery is final, checks
//! the page's numbers against the API's, releases a quarantined address, and the session rules
//! hold: no CSRF token → refused; no session → the login page.
//!
//! `CARTERO_SCREENSHOTS=docs/screenshots cargo test --test dashboard_browser` also writes the
//! screenshots linked from the README.

mod support;

use serde_json::{Value, json};
use support::browser::Browser;
use support::sink::Sink;
use support::{ConfigBuilder, DEADLINE, Serve, http_json, wait_until};

const GOOD: usize = 6;
const BAD: usize = 2;

struct Node {
    serve: Serve,
    token: String,
    base: String,
}

impl Node {
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = http_json(&self.serve, method, path, body, Some(&self.token), None);
        assert!(status < 300, "{method} {path}: {status} {v}");
        v
    }
}

fn start_node(dir: &std::path::Path, good: &Sink, bad: &Sink) -> Node {
    let data = dir.join("data");
    let config = ConfigBuilder::new(&data)
        .route("dest.test", good.addr)
        .route("bad.test", bad.addr)
        .write(&dir.join("cartero.toml"));
    let serve = Serve::start(&config, &data);
    let token = serve.token();
    let base = format!("http://{}", serve.http);
    let node = Node { serve, token, base };
    let mut recipients: Vec<Value> = (0..GOOD)
        .map(|i| json!({"email": format!("user{i}@dest.test")}))
        .collect();
    recipients.extend((0..BAD).map(|i| json!({"email": format!("gone{i}@bad.test")})));
    node.api(
        "POST",
        "/api/v1/lists/spring/recipients",
        Some(Value::Array(recipients)),
    );
    node
}

fn status_of(node: &Node, id: &str) -> Value {
    node.api("GET", &format!("/api/v1/deliveries/{id}"), None)
}

fn login(b: &Browser, node: &Node, next: &str) {
    b.goto(&format!("{}{next}", node.base));
    assert!(
        b.url().contains("/ui/login?next="),
        "no session: the login page, got {}",
        b.url()
    );
    b.type_into("#password", &node.token);
    b.click("button[type=submit]");
    b.wait_for(
        "the page after login",
        "return location.pathname === arguments[0] && !document.querySelector('#main .loading')",
        json!([next]),
    );
}

/// The text of every KPI card of a view, by name.
fn kpi_texts(b: &Browser, view: &str) -> Value {
    b.script(
        "const out = {}; for (const e of document.querySelectorAll(`[data-kpi^='${arguments[0]}.']`)) \
         out[e.dataset.kpi.split('.')[1]] = e.querySelector('.value').textContent; return out;",
        json!([view]),
    )
}

fn shown(n: &Value) -> String {
    n.as_u64()
        .map(|v| v.to_string())
        .unwrap_or_else(|| n.to_string())
}

fn pct(rate: &Value) -> String {
    format!("{:.1} %", rate.as_f64().unwrap_or(-1.0))
}

/// Every page checks its flash area: a script error or a failed API call shows there.
fn screenshot(b: &Browser, name: &str) {
    let error = b.script(
        "const e = document.querySelector('#flash .error'); return e && e.textContent",
        json!([]),
    );
    assert_eq!(error, Value::Null, "{name}: the page shows an error");
    if let Ok(dir) = std::env::var("CARTERO_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        b.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
    }
}

#[test]
fn an_operator_runs_a_delivery_from_the_dashboard_and_sees_the_apis_numbers() {
    let Some(b) = Browser::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (Sink::start(), Sink::start());
    good.set_hold(true);
    bad.set_dot_reply(Some("550 5.1.1 <gone@bad.test>: user unknown"));
    let node = start_node(dir.path(), &good, &bad);

    login(&b, &node, "/ui/deliveries");
    // Create, analyze and start from the UI.
    b.click("details.panel summary");
    for (name, value) in [
        ("name", "spring"),
        ("list", "spring"),
        ("from", "news@src.test"),
        ("subject", "Hello"),
        ("text", "Hi {{ email }}"),
    ] {
        b.type_into(&format!("#create [name={name}]"), value);
    }
    b.click("#create button[type=submit]");
    let id = b.wait_for(
        "the new draft in the list",
        "const a = document.querySelector('#deliveries-table tbody a'); return a && a.textContent",
        json!([]),
    );
    let id = id.as_str().unwrap().to_string();
    assert_eq!(
        node.api("GET", &format!("/api/v1/deliveries/{id}"), None)["delivery"]["state"],
        "draft"
    );
    b.goto(&format!("{}/ui/deliveries/{id}", node.base));
    b.click("button[data-verb=analyze]");
    b.wait_for(
        "Analyzed",
        "return document.getElementById('state')?.textContent === 'analyzed'",
        json!([]),
    );
    b.click("button[data-verb=start]");
    b.wait_for(
        "Running",
        "return document.getElementById('state')?.textContent === 'running'",
        json!([]),
    );

    // The good sink holds its answers: the bad rows fail, the others stay Taken.
    let status = |node: &Node| status_of(node, &id);
    assert!(wait_until(DEADLINE, || {
        let s = status(&node);
        s["kpis"]["failed"] == BAD as u64 && s["kpis"]["taken"] == GOOD as u64
    }));
    b.wait_for(
        "taken and failed on the page",
        "const v = (k) => document.querySelector(`[data-kpi='efs.${k}'] .value`)?.textContent; \
         return v('taken') === arguments[0] && v('failed') === arguments[1]",
        json!([GOOD.to_string(), BAD.to_string()]),
    );
    assert_eq!(b.text("#final"), "not final yet");
    screenshot(&b, "delivery-running");

    // Pause and resume.
    b.click("button[data-verb=pause]");
    b.wait_for(
        "Paused",
        "return document.getElementById('state')?.textContent === 'paused'",
        json!([]),
    );
    assert_eq!(status(&node)["delivery"]["state"], "paused");
    b.click("button[data-verb=resume]");
    b.wait_for(
        "Running again",
        "return document.getElementById('state')?.textContent === 'running'",
        json!([]),
    );
    assert_eq!(status(&node)["delivery"]["state"], "running");

    // A second tab follows the log. Both pages get a marker a reload would erase.
    let dashboard = b.window();
    b.script("window.__noReload = 1; return 1", json!([]));
    b.new_tab();
    b.goto(&format!("{}/ui/deliveries/{id}/logs", node.base));
    b.wait_for(
        "taken rows in the log",
        "return [...document.querySelectorAll('#log-table .status')].filter(e => e.textContent === 'taken').length === arguments[0]",
        json!([GOOD]),
    );
    b.script("window.__noReload = 1; return 1", json!([]));
    good.set_hold(false);
    b.wait_for(
        "every row final in the log",
        "const s = [...document.querySelectorAll('#log-table .status')].map(e => e.textContent); \
         return s.length === arguments[0] && s.filter(x => x === 'sent').length === arguments[1] \
           && s.filter(x => x === 'failed').length === arguments[2]",
        json!([GOOD + BAD, GOOD, BAD]),
    );
    let reply = b.text("#log-table tbody tr:last-child td:nth-child(5)");
    assert!(
        reply.contains("550 5.1.1"),
        "the last reply of a failed row: {reply}"
    );
    assert_eq!(b.script("return window.__noReload", json!([])), json!(1));
    screenshot(&b, "delivery-log");

    b.switch_to(&dashboard);
    b.wait_for(
        "final",
        "return document.getElementById('final')?.textContent === 'final'",
        json!([]),
    );
    assert_eq!(
        b.script("return window.__noReload", json!([])),
        json!(1),
        "no reload"
    );
    let s = status(&node);
    assert_eq!(s["final"], true);
    let efs = kpi_texts(&b, "efs");
    for k in [
        "to_deliver",
        "hard_bounces",
        "soft_bounces",
        "complaints",
        "unsubscribes",
        "new_quarantines",
    ] {
        let api = if s["efs"][k].is_object() {
            &s["efs"][k]["count"]
        } else {
            &s["efs"][k]
        };
        assert_eq!(efs[k], shown(api), "efs.{k}: {efs} vs {}", s["efs"]);
    }
    for k in ["pending", "taken", "sent", "failed", "ignored"] {
        assert_eq!(efs[k], shown(&s["efs"][k]["count"]), "efs.{k}");
    }
    assert_eq!(efs["success"], pct(&s["efs"]["success"]["rate"]));
    assert_eq!(efs["sent"], GOOD.to_string());
    let legacy = kpi_texts(&b, "legacy");
    assert_eq!(legacy["success"], pct(&s["legacy"]["success"]["rate"]));
    assert_eq!(legacy["failed"], shown(&s["legacy"]["failed"]["count"]));
    // The chart's legend totals are the throughput endpoint's.
    let t = node.api(
        "GET",
        &format!("/api/v1/deliveries/{id}/throughput?hours=1"),
        None,
    );
    let sum = |k: &str| {
        t["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[k].as_u64().unwrap())
            .sum::<u64>()
    };
    let legend = b.text("ul.legend");
    assert!(
        legend.contains(&format!("Delivered (Sent): {}", sum("sent"))),
        "{legend}"
    );
    assert!(
        legend.contains(&format!("Failed: {}", sum("failed"))),
        "{legend}"
    );
    // The 24 h window: steps of 15 minutes, the same totals.
    b.click(".windows button:nth-child(3)");
    b.wait_for(
        "the 24 h chart",
        "return document.querySelector('svg.chart')?.getAttribute('aria-label').includes('last 24 h, in messages per 15 min')",
        json!([]),
    );
    assert_eq!(b.text(".windows button[aria-pressed=true]"), "24 h");
    assert!(
        b.text("ul.legend")
            .contains(&format!("Delivered (Sent): {}", sum("sent")))
    );
    b.click(".windows button:nth-child(1)");
    b.set_size(1280, 1800);
    b.find("svg.chart path.c-sent");
    screenshot(&b, "delivery-final");
    b.set_size(1280, 800);

    // Usable at a phone's width: nothing wider than the screen.
    b.set_size(390, 844);
    let overflow = b.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        json!([]),
    );
    assert_eq!(overflow, json!(0), "horizontal overflow at 390 px");
    screenshot(&b, "delivery-phone");
    b.set_size(1280, 800);

    // Release one quarantined address, with a reason.
    b.goto(&format!("{}/ui/quarantine", node.base));
    b.find("#quarantine-table button[data-release='gone0@bad.test']");
    screenshot(&b, "quarantine");
    b.type_into("[name=why]", "mailbox restored, checked with the customer");
    b.click("#quarantine-table button[data-release='gone0@bad.test']");
    b.wait_for(
        "the address gone from the list",
        "return !document.querySelector(\"#quarantine-table button[data-release='gone0@bad.test']\") \
         && document.querySelector('#flash .ok')",
        json!([]),
    );
    let a = node.api("GET", "/api/v1/addresses/gone0@bad.test", None);
    assert_eq!(a["status"], "valid", "{a}");
    let audit = node.api("GET", "/api/v1/quarantine/releases", None);
    assert_eq!(audit[0]["actor"], "api-token");
    assert_eq!(
        audit[0]["why"],
        "mailbox restored, checked with the customer"
    );
    b.wait_for(
        "the release in the audit table",
        "return document.getElementById('audit').textContent.includes('mailbox restored')",
        json!([]),
    );

    // Bulk release by filter: a dry run counts, then the release does what it counted.
    b.type_into("form.filters [name=domain]", "bad.test");
    b.click("form.filters button[type=submit]");
    b.click(".bulk button");
    let confirm = b.text("#confirm-release");
    assert_eq!(confirm, "Release 1 addresses", "gone1 is the one left");
    assert_eq!(
        node.api("GET", "/api/v1/addresses/gone1@bad.test", None)["status"],
        "quarantine",
        "the preview released nothing"
    );
    b.click("#confirm-release");
    b.wait_for(
        "the bulk release done",
        "const e = document.querySelector('#flash .ok'); return e && e.textContent === 'Released 1 addresses.'",
        json!([]),
    );
    assert_eq!(
        node.api("GET", "/api/v1/addresses/gone1@bad.test", None)["status"],
        "valid"
    );
    let audit = node.api("GET", "/api/v1/quarantine/releases", None);
    assert_eq!(
        (
            audit[0]["count"].as_u64(),
            audit[0]["filter"]["domain"].as_str()
        ),
        (Some(1), Some("bad.test"))
    );

    // A transactional call shows on its page with its template and final status.
    node.api(
        "PUT",
        "/api/v1/transactional/templates/welcome",
        Some(json!({"from": "hello@src.test", "subject": "Welcome", "text": "Hi {{ name }}"})),
    );
    let (code, call) = http_json(
        &node.serve,
        "POST",
        "/api/v1/transactional/welcome",
        Some(json!({"recipient": "user0@dest.test", "data": {"name": "Ana"}})),
        Some(&node.token),
        Some("signup-42"),
    );
    assert_eq!(code, 202, "{call}");
    b.goto(&format!("{}/ui/transactional", node.base));
    b.wait_for(
        "the call, sent",
        "const t = document.getElementById('calls-table');          return t && t.textContent.includes('welcome v1') && t.textContent.includes('signup-42')            && t.querySelector('.status.sent')",
        json!([]),
    );
    assert!(b.text("#templates-table").contains("welcome"));
    assert!(
        b.text("#outbox").starts_with("0 calls"),
        "{}",
        b.text("#outbox")
    );
    screenshot(&b, "transactional");

    // Suspend a domain from the MTA page, see it with its reason, resume it.
    b.goto(&format!("{}/ui/mta", node.base));
    b.find("#shaping-table");
    b.type_into("form.filters [name=scope]", "domain:bad.test");
    b.type_into("form.filters [name=for]", "2h");
    b.type_into("form.filters [name=reason]", "provider incident");
    b.click("form.filters button[type=submit]");
    b.find("#suspensions-table button[data-resume='domain:bad.test']");
    assert!(b.text("#suspensions-table").contains("provider incident"));
    let shaping = node.api("GET", "/api/v1/shaping", None);
    assert_eq!(
        shaping["suspensions"][0]["scope"], "domain:bad.test",
        "{shaping}"
    );
    assert!(
        shaping["suspensions"][0]["until"].is_u64(),
        "suspended for 2h: {shaping}"
    );
    screenshot(&b, "mta");
    b.click("#suspensions-table button[data-resume='domain:bad.test']");
    b.wait_for(
        "the suspension gone",
        "return !document.querySelector(\"#suspensions-table button[data-resume]\")",
        json!([]),
    );
    assert_eq!(
        node.api("GET", "/api/v1/shaping", None)["suspensions"],
        json!([])
    );
    b.goto(&format!("{}/ui/deliveries", node.base));
    b.find("#deliveries-table");
    screenshot(&b, "deliveries");

    // A state change without the CSRF token is refused, with it the same session may act.
    let without = b.script_async(
        "const done = arguments[arguments.length - 1]; \
         fetch(`/api/v1/deliveries/${arguments[0]}/pause`, {method: 'POST', credentials: 'same-origin'}) \
           .then(r => done(r.status))",
        json!([id]),
    );
    assert_eq!(without, json!(401), "no X-CSRF-Token");
    let with = b.script_async(
        "const done = arguments[arguments.length - 1]; \
         const t = document.querySelector('meta[name=csrf-token]').content; \
         fetch(`/api/v1/deliveries/${arguments[0]}/pause`, {method: 'POST', credentials: 'same-origin', \
           headers: {'X-CSRF-Token': t}}).then(r => done(r.status))",
        json!([id]),
    );
    assert_eq!(
        with,
        json!(409),
        "authorized, refused only because a finished delivery cannot pause"
    );
    assert_eq!(status(&node)["delivery"]["state"], "finished");

    // Stop a running delivery from its page (a second click confirms).
    good.set_hold(true);
    let second = node.api(
        "POST",
        "/api/v1/deliveries",
        Some(json!({"name": "second", "from": "news@src.test", "subject": "Again", "text": "x", "list": "spring"})),
    )["id"]
        .to_string();
    node.api(
        "POST",
        &format!("/api/v1/deliveries/{second}/analyze"),
        None,
    );
    node.api("POST", &format!("/api/v1/deliveries/{second}/start"), None);
    b.goto(&format!("{}/ui/deliveries/{second}", node.base));
    b.click("button[data-verb=stop]");
    assert_eq!(b.text("button[data-verb=stop]"), "Confirm stop");
    assert_eq!(
        status_of(&node, &second)["delivery"]["state"],
        "running",
        "one click stops nothing"
    );
    b.click("button[data-verb=stop]");
    b.wait_for(
        "Stopped",
        "return document.getElementById('state')?.textContent === 'stopped'",
        json!([]),
    );
    assert_eq!(status_of(&node, &second)["delivery"]["state"], "stopped");
    good.set_hold(false);

    // Logout ends the session; without one every page leads to the login page.
    b.click("form.logout button");
    b.wait_for(
        "the login page",
        "return location.pathname === '/ui/login'",
        json!([]),
    );
    b.goto(&format!("{}/ui/deliveries/{id}", node.base));
    assert!(
        b.url()
            .ends_with(&format!("/ui/login?next=/ui/deliveries/{id}")),
        "{}",
        b.url()
    );
    b.delete_cookies();
    b.goto(&format!("{}/ui/quarantine", node.base));
    assert!(
        b.url().ends_with("/ui/login?next=/ui/quarantine"),
        "{}",
        b.url()
    );
}
