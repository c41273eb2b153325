"""Memory with many queued recipients: cartero's smart host answers 421 to every connection, so
everything injected stays queued; then VmRSS / VmHWM are read and divided by the recipients.

Driven by bench/queued_rss.sh. Settings from the environment (see bench/README.md): RCPTS,
MODE (http | smtp | both), BATCH, HTTP_THREADS, DOMAINS, SIZE, SMTP_SIZE, LANES, SINK_MODE, TIMEOUT.
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINK_MODES = {
    # The destination is down: 421 on connect, so each attempt defers the whole ready queue.
    "connect421": ["-Q", "CONNECT"],
    # The destination answers but refuses every recipient with 450.
    "rcpt450": ["-r", "RCPT"],
}


def env_int(name, default):
    return int(os.environ.get(name, default))


def raw_message(size):
    """A plain message of about `size` bytes (shared by every recipient of a request)."""
    head = ("From: Bench <sender@source.bench.test>\r\nTo: undisclosed-recipients:;\r\n"
            "Subject: queued rss\r\nMessage-ID: <{id}@source.bench.test>\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def inject_http(mta, total, batch, domains, size, threads, deadline):
    """POSTs `total` recipients, `batch` per request (one raw body per request)."""
    raw = raw_message(size)
    next_start = [0]
    errors = []
    lock = threading.Lock()

    def worker():
        while time.monotonic() < deadline:
            with lock:
                start = next_start[0]
                if start >= total or errors:
                    return
                next_start[0] = start + batch
            count = min(batch, total - start)
            rcpts = [f"u{k}@d{k % domains}.bench.test" for k in range(start, start + count)]
            body = json.dumps({
                "mail_from": "sender@source.bench.test",
                "recipients": rcpts,
                "content": {"raw": raw.replace("{id}", str(start))},
            })
            status, reply = mta.http("POST", "/api/v1/messages", body)
            if status != 200:
                with lock:
                    errors.append(f"HTTP {status}: {reply[:200]!r}")
                return

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def wait_queued(mta, total, deadline):
    """Waits until every recipient is queued (scheduled or ready) and at most 1 % is ready.

    Not "none ready": a long SMTP injection outlives the first retry (20 min − 10 % jitter), after
    which retries keep a few recipients in the ready queue at any moment.
    """
    m = {}
    while time.monotonic() < deadline:
        m = mta.metrics()
        ready = m.get("cartero_queue_ready_recipients", 0)
        if (m.get("cartero_queue_scheduled_recipients", 0) + ready >= total
                and ready <= total // 100):
            return True, m
        time.sleep(1)
    return False, m


def run_mode(mode, cfg, work):
    sink = bl.Sink(bl.free_port(), extra=SINK_MODES[cfg["sink_mode"]])
    data = os.path.join(work, f"data-{mode}")
    port, http_port, token = bl.free_port(), bl.free_port(), secrets.token_hex(16)
    conf = os.path.join(work, f"cartero-{mode}.toml")
    bl.cartero_config(conf, data, port, http_port, f"127.0.0.1:{sink.port}", token, 50, 1000)
    mta = bl.Cartero(cfg["binary"], conf, port, http_port, token,
                     os.path.join(work, f"cartero-{mode}.log"))
    sampler = None
    try:
        time.sleep(1)  # let start-up allocations settle before the baseline
        base_rss = bl.status_kb(mta.pid, "VmRSS")
        sampler = bl.MemSampler(lambda: [mta.pid], interval=0.5).start()
        t0 = time.monotonic()
        deadline = t0 + cfg["timeout"]
        total = cfg["rcpts"]
        if mode == "http":
            errors = inject_http(mta, total, cfg["batch"], cfg["domains"], cfg["size"],
                                 cfg["http_threads"], deadline)
        else:
            failures, err = bl.inject_smtp_source(port, total, cfg["domains"], cfg["smtp_size"],
                                                  cfg["lanes"], cfg["timeout"])
            errors = [f"{failures} smtp-source runs failed: {err}"] if failures else []
        t_inj = time.monotonic()
        queued, m = wait_queued(mta, total, deadline)
        t_q = time.monotonic()
        time.sleep(2)
        sampler.stop()
        rss, hwm = bl.status_kb(mta.pid, "VmRSS"), bl.status_kb(mta.pid, "VmHWM")
        du = subprocess.run(["du", "-sk", data], capture_output=True, text=True).stdout.split()
        n = (m.get("cartero_queue_scheduled_recipients", 0)
             + m.get("cartero_queue_ready_recipients", 0)) or 1
        return {
            "mode": mode,
            "sink_mode": cfg["sink_mode"],
            "recipients": total,
            "all_queued": queued,
            "errors": errors,
            "inject_s": t_inj - t0,
            "until_all_deferred_s": t_q - t0,
            "baseline_rss_kb": base_rss,
            "vm_rss_kb": rss,
            "vm_hwm_kb": hwm,
            "bytes_per_rcpt_rss": 1024 * rss / n,
            "bytes_per_rcpt_above_baseline": 1024 * (rss - base_rss) / n,
            "bytes_per_rcpt_hwm": 1024 * hwm / n,
            "spool_disk_kb": int(du[0]) if du else 0,
            "metrics": {k: v for k, v in m.items()
                        if k.startswith("cartero_") and not k.endswith("_bucket")},
        }
    finally:
        if sampler:
            sampler.stop()
        mta.stop()
        sink.stop()


def table(results):
    lines = [
        "| injection | recipients | all deferred | inject s | VmRSS | VmHWM | bytes/rcpt (RSS) "
        "| bytes/rcpt above idle | spool on disk |",
        "|---|---:|:-:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        how = ("HTTP API, 1 raw body per request" if r["mode"] == "http"
               else "smtp-source, 1 rcpt per message")
        lines.append(
            f"| {how} | {r['recipients']:,} | {'yes' if r['all_queued'] else 'NO'} "
            f"| {r['inject_s']:.0f} | {r['vm_rss_kb'] / 1024:.0f} MiB | {r['vm_hwm_kb'] / 1024:.0f} MiB "
            f"| {r['bytes_per_rcpt_rss']:.0f} | {r['bytes_per_rcpt_above_baseline']:.0f} "
            f"| {r['spool_disk_kb'] / 1024:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main():
    cfg = {
        "rcpts": env_int("RCPTS", 1000000),
        "batch": env_int("BATCH", 1000),
        "http_threads": env_int("HTTP_THREADS", 4),
        "domains": env_int("DOMAINS", 1000),
        "size": env_int("SIZE", 5000),
        "smtp_size": env_int("SMTP_SIZE", 1000),
        "lanes": env_int("LANES", 20),
        "sink_mode": os.environ.get("SINK_MODE", "connect421"),
        "timeout": env_int("TIMEOUT", 3600),
        "binary": os.environ.get("CARTERO_BIN", os.path.join(ROOT, "target", "release", "cartero")),
    }
    mode = os.environ.get("MODE", "http")
    modes = ["http", "smtp"] if mode == "both" else [mode]
    work = tempfile.mkdtemp(prefix="cartero-rss.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    print(f"work dir {work}; settings {cfg}", flush=True)
    results = []
    for m in modes:
        print(f"== {m}: {cfg['rcpts']} recipients", flush=True)
        r = run_mode(m, cfg, work)
        print(json.dumps(r, indent=1), flush=True)
        results.append(r)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"settings": cfg, "results": results}, f, indent=1)
    print()
    print(table(results))
    if os.environ.get("KEEP") != "1":
        subprocess.run(["rm", "-rf", work])
    return 0 if all(r["all_queued"] and not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
