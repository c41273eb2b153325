//! End-to-end scenarios of the campaign layer (issue 9, SPEC §3.3–3.5): one small delivery per
//! scenario, run by the `cartero` binary to a scripted loopback receiver (the in-test sink),
//! with reports (DSN, ARF, one-click unsubscribe) sent back to its inMail listener and HTTP API.
//! Every log status and KPI step of SPEC §3.3 is read in order with the CLI's own
//! `delivery status`, `delivery logs` and `address show`. Each intermediate step is held by the
//! receiver (a stalled reply, a transient reply repeated on every retry) until the test has
//! read it, so no step can be skipped by a fast machine.
//!
//! Every scenario runs on SQLite, and on PostgreSQL (in a schema of its own, dropped when the
//! scenario passed) when `CARTERO_TEST_POSTGRES_URL` is set; without it the PostgreSQL runs
//! print `SKIPPED: …` (and fail under `CI=true`).

#[path = "../support/mod.rs"]
mod support;

mod feedback;
mod smtp;

use serde_json::Value;
use std::cell::Cell;
use support::sink::{Sink, SinkMsg};
use support::{ConfigBuilder, DEADLINE, Serve, campaign_json, in_ci, run, wait_until};

/// Where the campaign layer keeps its data.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const URL_VAR: &str = "CARTERO_TEST_POSTGRES_URL";

/// What a scenario needs beyond the shared setup.
#[derive(Default)]
pub struct Opts {
    /// One-click unsubscribe URLs pointing at this instance's HTTP listener. The config must
    /// name its port before the start, so a free one is picked first (another process could
    /// take it in between; the start then fails loudly).
    pub unsubscribe: bool,
    /// Lines added under `[campaign]`.
    pub campaign: &'static str,
}

/// A running `cartero serve` with its receiver, for one scenario.
pub struct Scenario {
    pub sink: Sink,
    pub mta: Serve,
    dir: tempfile::TempDir,
    schema: Option<String>,
    lists: Cell<usize>,
}

impl Scenario {
    /// Starts the instance; `None` (with the printed reason) when the backend is not available.
    pub fn start(backend: Backend, opts: Opts) -> Option<Scenario> {
        let (database_url, schema) = match backend {
            Backend::Sqlite => (String::new(), None),
            Backend::Postgres => {
                let (url, schema) = pg::fresh_schema()?;
                (url, Some(schema))
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start();
        let data = dir.path().join("data");
        let mut cfg = ConfigBuilder::new(&data)
            .route("dest.test", sink.addr)
            // Retries a second apart (the defaults wait minutes), also after a full mailbox.
            .delivery("retry.initial = \"1s\"")
            .delivery("retry.max = \"1s\"")
            .delivery("retry.jitter = 0.0")
            .delivery("retry.greylist_first = \"1s\"")
            .delivery("retry.greylist_min = \"1s\"")
            .delivery("retry.greylist_max = \"1s\"")
            .delivery("retry.mailbox_full_min = \"1s\"");
        let mut inmail = String::from("[inmail]\nbounce_domains = [\"bounces.test\"]\n");
        if opts.unsubscribe {
            let http: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
                .parse()
                .unwrap();
            cfg = cfg.http(http);
            inmail.push_str(&format!(
                "\n[inmail.list_unsubscribe]\nurl_base = \"http://{http}\"\n"
            ));
        }
        let cfg = cfg
            .raw(&inmail)
            .raw(&format!(
                "[campaign]\ndatabase_url = {database_url:?}\n{}",
                opts.campaign
            ))
            .write(&dir.path().join("cartero.toml"));
        let mta = Serve::start(&cfg, &data);
        Some(Scenario {
            sink,
            mta,
            dir,
            schema,
            lists: Cell::new(0),
        })
    }

    pub fn json(&self, args: &[&str]) -> Value {
        campaign_json(&self.mta, args)
    }

    /// A new list of `addresses` and a Draft delivery to it, analyzed; returns its id.
    pub fn prepare(&self, addresses: &[&str], validity: Option<&str>) -> String {
        let n = self.lists.get() + 1;
        self.lists.set(n);
        let list = format!("list{n}");
        let mut csv = String::from("email,first_name\n");
        for (i, a) in addresses.iter().enumerate() {
            csv.push_str(&format!("{a},Ana{i}\n"));
        }
        let csv_path = self.dir.path().join(format!("{list}.csv"));
        std::fs::write(&csv_path, csv).unwrap();
        let body = self.dir.path().join("body.txt");
        std::fs::write(&body, "Hello {{ first_name }}\n").unwrap();
        let csv_arg = csv_path.to_string_lossy().into_owned();
        self.json(&["recipients", "import", &csv_arg, "--list", &list]);
        let body_arg = body.to_string_lossy().into_owned();
        let mut create = vec![
            "delivery",
            "create",
            "--name",
            &list,
            "--from",
            "News <news@src.test>",
            "--subject",
            "Hi {{ first_name }}",
            "--text",
            &body_arg,
            "--list",
            &list,
        ];
        if let Some(v) = validity {
            create.extend_from_slice(&["--validity", v]);
        }
        let id = self.json(&create)["id"].as_i64().unwrap().to_string();
        self.json(&["delivery", "analyze", &id]);
        id
    }

    pub fn start_delivery(&self, id: &str) {
        self.json(&["delivery", "start", id]);
    }

    pub fn status(&self, id: &str) -> Value {
        self.json(&["delivery", "status", id])
    }

    /// The delivery's state and KPIs as one line (see [`kpi_line`]).
    pub fn kpis(&self, id: &str) -> String {
        kpi_line(&self.status(id))
    }

    /// Waits until the KPI line is `want`; panics with the last one seen.
    pub fn wait_kpis(&self, id: &str, want: &str) -> Value {
        self.wait(|| self.status(id), kpi_line, want)
    }

    /// Every log row of the delivery (at most 1000), in id order.
    pub fn rows(&self, id: &str, status: Option<&str>) -> Vec<Value> {
        let mut args = vec!["delivery", "logs", id, "--limit", "1000"];
        if let Some(s) = status {
            args.extend_from_slice(&["--status", s]);
        }
        let logs = self.json(&args);
        logs["rows"].as_array().cloned().unwrap_or_default()
    }

    /// The log row of `address`.
    pub fn row(&self, id: &str, address: &str) -> Value {
        self.rows(id, None)
            .into_iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("no row for {address} in delivery {id}"))
    }

    /// Waits until the row of `address` reads `want` (see [`row_line`]).
    pub fn wait_row(&self, id: &str, address: &str, want: &str) -> Value {
        self.wait(|| self.row(id, address), row_line, want)
    }

    /// The quality record of `address`, or `None` when no event ever named it (Valid).
    pub fn address(&self, address: &str) -> Option<Value> {
        let api = format!("http://{}", self.mta.http);
        let config = self.mta.config.to_string_lossy().into_owned();
        let args = [
            "address", "show", address, "--config", &config, "--api", &api, "--json",
        ];
        let (code, out, err) = run(&args, None);
        if code == 0 {
            return Some(serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")));
        }
        assert!(err.contains("404"), "address show {address}:\n{out}\n{err}");
        None
    }

    /// The address's record as one line (see [`address_line`]).
    pub fn address_line(&self, address: &str) -> String {
        address_line(self.address(address).as_ref())
    }

    pub fn wait_address(&self, address: &str, want: &str) {
        self.wait(|| self.address(address), |a| address_line(a.as_ref()), want);
    }

    fn wait<T: std::fmt::Debug>(
        &self,
        read: impl Fn() -> T,
        line: impl Fn(&T) -> String,
        want: &str,
    ) -> T {
        let mut last = None;
        let ok = wait_until(DEADLINE, || {
            let v = read();
            let done = line(&v) == want;
            last = Some(v);
            done
        });
        let last = last.expect("read at least once");
        assert!(
            ok,
            "waited for {want:?}, last seen {:?}\n{last:?}\n{}",
            line(&last),
            self.mta.log()
        );
        last
    }

    /// The messages the receiver accepted for `address`.
    pub fn received(&self, address: &str) -> Vec<SinkMsg> {
        self.sink
            .accepted()
            .into_iter()
            .filter(|m| m.rcpts.iter().any(|r| r == address))
            .collect()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take()
            && !std::thread::panicking()
        {
            pg::drop_schema(&schema);
        }
    }
}

/// A delivery's state and KPIs, the figures SPEC §3.3 lists: counts by status, failure types,
/// feedback, new quarantines, Success % in both views and whether the figures are final.
pub fn kpi_line(st: &Value) -> String {
    let k = &st["kpis"];
    let n = |f: &str| k[f].as_u64().unwrap_or(u64::MAX);
    let rate = |v: &Value| format!("{:.0}%", v["success"]["rate"].as_f64().unwrap_or(-1.0));
    format!(
        "{} P{} T{} S{} F{} I{} | hard {} soft {} compl {} unsub {} newq {} | success {} legacy {} final {}",
        st["delivery"]["state"].as_str().unwrap_or("?"),
        n("pending"),
        n("taken"),
        n("sent"),
        n("failed"),
        n("ignored"),
        n("hard_bounces"),
        n("soft_bounces"),
        n("complaints"),
        n("unsubscribes"),
        n("new_quarantines"),
        rate(&st["efs"]),
        rate(&st["legacy"]),
        st["final"],
    )
}

/// A log row's status, failure (type/reason/class) and feedback marks.
pub fn row_line(row: &Value) -> String {
    let mut line = row["status"].as_str().unwrap_or("?").to_string();
    let f = &row["failure"];
    if !f.is_null() {
        let class = f["class"].as_u64().map_or("-".into(), |c| c.to_string());
        line.push_str(&format!(
            " {}/{}/{class}",
            f["type"].as_str().unwrap_or("?"),
            f["reason"].as_str().unwrap_or("?")
        ));
    }
    for mark in ["complained", "unsubscribed"] {
        if row["feedback"][mark] == true {
            line.push(' ');
            line.push_str(mark);
        }
    }
    line
}

/// An address's quality record: status, counted errors and the reason it was put aside.
pub fn address_line(a: Option<&Value>) -> String {
    match a {
        None => "never seen".into(),
        Some(a) => format!(
            "{} errors {} reason {}",
            a["status"].as_str().unwrap_or("?"),
            a["error_count"],
            a["reason"].as_str().unwrap_or("-")
        ),
    }
}

/// The kinds in a row's attempt history, oldest first.
pub fn attempt_kinds(row: &Value) -> Vec<String> {
    row["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["kind"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One delivery to `address`, read at each step of a success (SPEC §3.3): Pending before the
/// start, Taken while the receiver holds its reply to the data, Sent once it answered 250.
/// Returns the delivery id and the message as received.
pub fn deliver_one(s: &Scenario, address: &str) -> (String, SinkMsg) {
    let id = s.prepare(&[address], None);
    assert_eq!(row_line(&s.row(&id, address)), "pending");
    assert_eq!(
        s.kpis(&id),
        "analyzed P1 T0 S0 F0 I0 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success 0% legacy 0% final false"
    );
    s.sink.set_hold(true);
    let seen = s.sink.data_seen();
    s.start_delivery(&id);
    let row = s.wait_row(&id, address, "taken");
    assert!(row["message_id"].is_string(), "{row}");
    assert!(
        s.sink.wait_data_seen(seen + 1, DEADLINE),
        "never reached the receiver"
    );
    s.wait_kpis(
        &id,
        "running P0 T1 S0 F0 I0 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success 0% legacy 100% final false",
    );
    s.sink.set_hold(false);
    s.wait_row(&id, address, "sent");
    s.wait_kpis(
        &id,
        "finished P0 T0 S1 F0 I0 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success 100% legacy 100% final true",
    );
    let got = s.received(address);
    assert_eq!(got.len(), 1, "received once");
    (id, got.into_iter().next().unwrap())
}

/// A second delivery to an address put aside by the first: analysis excludes it as Ignored
/// with `reason` (its technical value `value`), and nothing is sent.
pub fn next_delivery_ignores(s: &Scenario, address: &str, reason: &str, value: u8) {
    let before = s.received(address).len();
    let id = s.prepare(&[address], None);
    assert_eq!(
        row_line(&s.row(&id, address)),
        format!("ignored ignored/{reason}/-")
    );
    let st = s.status(&id);
    assert_eq!(
        kpi_line(&st),
        "analyzed P0 T0 S0 F0 I1 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success 0% legacy 0% final true"
    );
    assert_eq!(
        st["kpis"]["ignored_by_reason"][value.to_string()],
        1,
        "{st}"
    );
    assert_eq!(s.received(address).len(), before);
}

/// The PostgreSQL runs: a schema per scenario in the test database.
mod pg {
    use super::{URL_VAR, in_ci};
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    async fn execute(url: &str, sql: String) {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }

    /// The URL of a new, empty schema of the test database, and the schema's name; `None` with
    /// a printed reason when no database is configured.
    pub fn fresh_schema() -> Option<(String, String)> {
        let Ok(url) = std::env::var(URL_VAR) else {
            assert!(!in_ci(), "{URL_VAR} must be set under CI");
            println!("SKIPPED: PostgreSQL run ({URL_VAR} is not set)");
            return None;
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "scenario_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        block_on(execute(
            &url,
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ));
        let sep = if url.contains('?') { '&' } else { '?' };
        Some((
            format!("{url}{sep}options=-c%20search_path%3D{schema}"),
            schema,
        ))
    }

    pub fn drop_schema(schema: &str) {
        if let Ok(url) = std::env::var(URL_VAR) {
            block_on(execute(
                &url,
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ));
        }
    }
}

/// Each scenario as two tests, `<name>_sqlite` and `<name>_postgres`.
macro_rules! on_both_backends {
    ($($module:ident::$name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                crate::$module::$name(crate::Backend::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                crate::$module::$name(crate::Backend::Postgres);
            })*
        }
    };
}

on_both_backends!(
    smtp::accepted_goes_pending_taken_sent,
    smtp::user_unknown_fails_hard_and_quarantines,
    smtp::soft_bounces_keep_taken_then_sent,
    smtp::soft_bounces_until_expiry_fail_with_the_last_class,
    smtp::stop_while_the_receiver_stalls,
    feedback::dsn_after_sent_fails_the_row,
    feedback::complaint_marks_the_row_and_denylists,
    feedback::one_click_unsubscribe_marks_the_row_and_denylists,
);
