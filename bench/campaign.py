"""Campaign benchmark (issue 9): import, analysis, a personalized delivery to smtp-sink, KPI reads
during the send, with the MTA alone relaying the same number of messages in the same run (the
ceiling). Driven by bench/campaign.sh. Settings from the environment:

  N (recipients, default 100000), DOMAINS (1000), CONNS (50), BACKENDS ("sqlite" or
  "sqlite,postgres"), PG_URL (for postgres), UPDATE_DOCS (1 when N >= 100000), CARTERO_BIN.
"""

import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- bench/campaign.sh: begin -->", "<!-- bench/campaign.sh: end -->"
TEXT = "Hello {{ first_name }} from {{ city }},\n" + "This is the spring newsletter. " * 60 + "\n"


def env(name, default):
    return os.environ.get(name, default)


def write_csv(path, n, domains):
    with open(path, "w") as f:
        f.write("email,first_name,city\n")
        for i in range(n):
            f.write(f"user{i}@d{i % domains}.bench.test,Name{i},City{i % 97}\n")


def config(path, data, smtp, http_port, sink, token, conns, db_url):
    bl.cartero_config(path, data, smtp, http_port, f"127.0.0.1:{sink}", token, conns, 1000)
    with open(path, "a") as f:
        f.write(f'\n[campaign]\ndatabase_url = "{db_url}"\n')


def call(mta, method, path, body=None, raw=None, ctype=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", mta.http_port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {mta.token}"}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = ctype or "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {payload[:300]!r}")
        return json.loads(payload)
    finally:
        conn.close()


class KpiPoller:
    """Reads the delivery's status every 50 ms from its own connection and keeps the latencies."""

    def __init__(self, mta, delivery):
        self.mta, self.path = mta, f"/api/v1/deliveries/{delivery}"
        self.latencies, self.last = [], None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.last = call(self.mta, "GET", self.path, timeout=30)
                self.latencies.append(time.monotonic() - t0)
            except (OSError, RuntimeError):
                pass
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def db_bytes(data, backend, pg_url):
    if backend == "sqlite":
        d = os.path.join(data, "campaign")
        return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    out = bl.subprocess.run(["psql", pg_url, "-Atc", "SELECT pg_database_size(current_database())"],
                            capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def reset_pg(pg_url):
    bl.subprocess.run(["psql", pg_url, "-qc", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                      check=True, capture_output=True)


def start(binary, work, name, sink_port, conns, db_url):
    smtp, http_port, token = bl.free_port(), bl.free_port(), secrets.token_hex(16)
    data = os.path.join(work, f"data-{name}")
    conf = os.path.join(work, f"{name}.toml")
    config(conf, data, smtp, http_port, sink_port, token, conns, db_url)
    mta = bl.Cartero(binary, conf, smtp, http_port, token, os.path.join(work, f"{name}.log"))
    mta.smtp_port = smtp
    return mta, data


def mta_alone(binary, work, n, domains, conns, size):
    """The ceiling: n one-recipient messages of the same size injected by smtp-source (20 at
    once, one per domain at a time), as the campaign hands one message per recipient."""
    sink = bl.Sink(bl.free_port())
    mta, _ = start(binary, work, "mta-alone", sink.port, conns, "")
    try:
        t0 = time.monotonic()
        failed, err = bl.inject_smtp_source(mta.smtp_port, n, domains, size, 20, 3600)
        if failed:
            raise RuntimeError(f"MTA alone: {failed} smtp-source runs failed: {err}")
        done = sink.wait_for(n, 3600)
        return {"seconds": (done or time.monotonic()) - t0, "rate": n / ((done or time.monotonic()) - t0)}
    finally:
        mta.stop()
        sink.stop()


def campaign(binary, work, backend, n, domains, conns, pg_url):
    if backend == "postgres":
        reset_pg(pg_url)
    sink = bl.Sink(bl.free_port())
    mta, data = start(binary, work, f"campaign-{backend}", sink.port, conns,
                      pg_url if backend == "postgres" else "")
    sampler = bl.MemSampler(lambda: [mta.pid]).start()
    r = {"backend": backend}
    try:
        csv = os.path.join(work, "list.csv")
        if not os.path.exists(csv):
            write_csv(csv, n, domains)
        raw = open(csv, "rb").read()
        t0 = time.monotonic()
        rep = call(mta, "POST", "/api/v1/lists/bench/import", raw=raw, ctype="text/csv")
        r["import_s"] = time.monotonic() - t0
        assert rep["imported"] == n, rep
        d = call(mta, "POST", "/api/v1/deliveries", {
            "name": "bench", "from": "News <news@source.bench.test>",
            "subject": "Spring news for {{ first_name }}", "text": TEXT, "list": "bench"})
        t0 = time.monotonic()
        counts = call(mta, "POST", f"/api/v1/deliveries/{d['id']}/analyze")
        r["analyze_s"] = time.monotonic() - t0
        assert counts["to_deliver"] == n, counts
        poller = KpiPoller(mta, d["id"])
        t0 = time.monotonic()
        call(mta, "POST", f"/api/v1/deliveries/{d['id']}/start")
        taken_at = sent_at = None
        deadline = t0 + 3600
        while time.monotonic() < deadline and sent_at is None:
            st = poller.last
            if st is not None:
                k = st["kpis"]
                if taken_at is None and k["pending"] == 0:
                    taken_at = time.monotonic()
                if k["sent"] == n:
                    sent_at = time.monotonic()
            time.sleep(0.05)
        poller.stop()
        if sent_at is None:
            raise RuntimeError(f"not all Sent: {poller.last}")
        r["taken_s"], r["sent_s"] = taken_at - t0, sent_at - t0
        lat = sorted(poller.latencies)
        r["kpi_p50_ms"] = 1000 * statistics.median(lat)
        r["kpi_p99_ms"] = 1000 * lat[int(0.99 * (len(lat) - 1))]
        r["kpi_reads"] = len(lat)
        r["sink_messages"] = sink.count
    finally:
        sampler.stop()
        mta.stop()
        sink.stop()
    r["peak_rss_mib"] = sampler.peak_rss_kb / 1024
    r["db_bytes_per_row"] = db_bytes(data, backend, pg_url) / n
    return r


def table(n, alone, runs):
    lines = [
        f"{n:,} recipients, personalized text (~2 KB), {len(runs)} backend(s); MTA alone: "
        f"{alone['seconds']:.1f} s ({alone['rate']:,.0f} msg/s) for the same number of messages.",
        "",
        "| | import | analysis | all Taken (hand-off) | all Sent | vs MTA alone | KPI read p50 / p99 | peak RSS | DB per row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['backend']} | {n / r['import_s']:,.0f} rows/s | {n / r['analyze_s']:,.0f} rows/s "
            f"| {r['taken_s']:.1f} s ({n / r['taken_s']:,.0f} msg/s) | {r['sent_s']:.1f} s "
            f"| {r['sent_s'] / alone['seconds']:.2f}× | {r['kpi_p50_ms']:.1f} / {r['kpi_p99_ms']:.1f} ms "
            f"| {r['peak_rss_mib']:.0f} MiB | {r['db_bytes_per_row']:.0f} B |")
    return "\n".join(lines)


def main():
    n = int(env("N", "100000"))
    domains, conns = int(env("DOMAINS", "1000")), int(env("CONNS", "50"))
    backends = env("BACKENDS", "sqlite").split(",")
    pg_url = env("PG_URL", "postgres://cartero:cartero@127.0.0.1:5432/cartero_bench")
    binary = env("CARTERO_BIN", os.path.join(ROOT, "target", "release", "cartero"))
    with tempfile.TemporaryDirectory(prefix="cartero-campaign-bench-") as work:
        os.chmod(work, 0o755)
        runs = [campaign(binary, work, b, n, domains, conns, pg_url) for b in backends]
        size = len(TEXT) + 400
        alone = mta_alone(binary, work, n, domains, conns, size)
    block = table(n, alone, runs)
    print(block)
    print(json.dumps({"alone": alone, "runs": runs}, indent=1))
    if env("UPDATE_DOCS", "1" if n >= 100000 else "0") == "1":
        header = ("## Campaign layer\n\nReproduce with `N=1000000 BACKENDS=sqlite,postgres "
                  "bench/campaign.sh` (see bench/README.md).")
        bl.replace_block(DOCS, BEGIN, END, block + f"\n\nRun {time.strftime('%Y-%m-%d')}.", header)


if __name__ == "__main__":
    main()
