"""Transactional benchmark (issue 10): durable calls accepted per second and, on an idle node,
the latency from a call to its arrival at smtp-sink; in the same run the MTA's own durable
injection (`POST /api/v1/messages`, one recipient with an idempotency key per request) by the
same client, as the peer. Driven by bench/transactional.sh. Settings from the environment:

  N (calls, default 20000), THREADS (client connections, 16), LATENCY_CALLS (200),
  BACKENDS ("sqlite" or "sqlite,postgres"), PG_URL, UPDATE_DOCS (1 when N >= 20000), CARTERO_BIN.
"""

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
import campaign as cb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- bench/transactional.sh: begin -->", "<!-- bench/transactional.sh: end -->"
TEMPLATE = {"from": "Shop <orders@source.bench.test>", "subject": "Order {{ order }} shipped",
            "text": "Hello {{ name }}, your order {{ order }} is on its way.\n" * 10}


def post_all(mta, n, threads, make):
    """POSTs `make(i)` = (path, body) for i in 0..n from `threads` keep-alive connections;
    returns the seconds until every one was answered 2xx (raises on any other answer)."""
    nxt, lock, errors = iter(range(n)), threading.Lock(), []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", mta.http_port, timeout=120)
        headers = {"Authorization": f"Bearer {mta.token}", "Content-Type": "application/json"}
        while True:
            with lock:
                i = None if errors else next(nxt, None)
            if i is None:
                conn.close()
                return
            path, body = make(i)
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status // 100 != 2:
                with lock:
                    errors.append(f"{path}: HTTP {resp.status}: {payload[:200]!r}")

    t0 = time.monotonic()
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(errors[0])
    return time.monotonic() - t0


def call(i, prefix):
    return ("/api/v1/transactional/shipped",
            {"recipient": f"user{i}@d{i % 100}.bench.test", "data": {"name": f"N{i}", "order": i},
             "idempotency_key": f"{prefix}-{i}"})


def injection(i, raw):
    return ("/api/v1/messages",
            {"mail_from": "orders@source.bench.test", "content": {"raw": raw},
             "recipients": [{"address": f"peer{i}@d{i % 100}.bench.test",
                             "idempotency_key": f"peer-{i}"}]})


def run_backend(binary, work, backend, n, threads, latency_calls, pg_url):
    if backend == "postgres":
        cb.reset_pg(pg_url)
    sink = bl.Sink(bl.free_port())
    mta, _ = cb.start(binary, work, f"tx-{backend}", sink.port, 50,
                      pg_url if backend == "postgres" else "")
    try:
        cb.call(mta, "PUT", "/api/v1/transactional/templates/shipped", TEMPLATE)
        # Idle latency first: one call at a time, each waited for at the sink.
        latencies = []
        for i in range(latency_calls):
            t0 = time.monotonic()
            path, body = call(i, "latency")
            status, reply = mta.http("POST", path, json.dumps(body))
            if status != 202:
                raise RuntimeError(f"latency call: HTTP {status}: {reply[:200]!r}")
            at = sink.wait_for(i + 1, 30)
            if at is None:
                raise RuntimeError("a latency call did not reach the sink within 30 s")
            latencies.append(at - t0)
        base = latency_calls
        calls_s = post_all(mta, n, threads, lambda i: call(base + i, "load"))
        if sink.wait_for(base + n, 3600) is None:
            raise RuntimeError("the calls did not all reach the sink within an hour")
        raw = bl.raw_message(700, "peer")
        inject_s = post_all(mta, n, threads, lambda i: injection(i, raw))
        sink.wait_for(base + 2 * n, 3600)
        latencies.sort()
        return {
            "calls_rate": n / calls_s,
            "inject_rate": n / inject_s,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        }
    finally:
        mta.stop()
        sink.stop()


def table(n, threads, latency_calls, runs):
    lines = [f"{n:,} calls from {threads} keep-alive connections (single calls, each with its own "
             f"idempotency key); idle latency over {latency_calls} calls sent one at a time.", "",
             "| | durable calls/s | MTA injections/s (peer) | ratio | call → smtp-sink p50 / p99 |",
             "|---|---|---|---|---|"]
    for backend, r in runs:
        lines.append(f"| {backend} | {r['calls_rate']:,.0f} | {r['inject_rate']:,.0f} | "
                     f"{r['calls_rate'] / r['inject_rate']:.2f}× | "
                     f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms |")
    lines += ["", f"Run {time.strftime('%Y-%m-%d')}."]
    return "\n".join(lines)


def main():
    n = int(cb.env("N", "20000"))
    threads = int(cb.env("THREADS", "16"))
    latency_calls = int(cb.env("LATENCY_CALLS", "200"))
    backends = cb.env("BACKENDS", "sqlite").split(",")
    pg_url = cb.env("PG_URL", "postgres://cartero:cartero@127.0.0.1:5432/cartero_bench")
    binary = cb.env("CARTERO_BIN", os.path.join(ROOT, "target", "release", "cartero"))
    update = cb.env("UPDATE_DOCS", "1" if n >= 20000 else "0") == "1"
    runs = []
    with tempfile.TemporaryDirectory(prefix="cartero-tx-bench-") as work:
        for backend in backends:
            r = run_backend(binary, work, backend, n, threads, latency_calls, pg_url)
            print(f"{backend}: {json.dumps(r)}", flush=True)
            runs.append((backend, r))
    block = table(n, threads, latency_calls, runs)
    print(block)
    if update:
        bl.replace_block(DOCS, BEGIN, END, block,
                         "## Transactional calls\n\nReproduce with "
                         "`BACKENDS=sqlite,postgres bench/transactional.sh` (see bench/README.md).")


if __name__ == "__main__":
    main()
