"""Adaptive-efficiency benchmark: N messages to four simulated providers whose limits the MTA is
not told; time to finish against the ideal (the providers' summed capacity) and the share of
delivery attempts that got throttle replies, for cartero adaptive, cartero static and Postfix.

Driven by bench/adaptive.sh. Settings from the environment (see bench/README.md, "Adaptive
efficiency"): N, SYSTEMS, TIMEOUT, SIZE, LANES, CHUNK, BATCH, HTTP_THREADS, SCENARIO,
UPDATE_DOCS, KEEP, BENCH_DIR, CARTERO_BIN, SIM_BIN.
"""

import datetime
import json
import os
import signal
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (machine_facts)
import benchlib as bl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- bench/adaptive.sh:begin -->", "<!-- bench/adaptive.sh:end -->"
SOURCE_IP = "127.0.0.2"  # the one egress address, for cartero and Postfix alike
TARGET_RATIO, TARGET_THROTTLED = 1.25, 0.02

# How each cartero system is switched, and nothing else: every other option is cartero's
# default, so cartero is told no limit of any provider. The one place to adjust when the
# [shaping.adaptive] keys change.
CARTERO_MODES = {
    "adaptive": '[shaping.adaptive]\nenabled = true\n',
    "static": '[shaping.adaptive]\nenabled = false\n',
}
# MODE_KEYS=0 leaves the block out: the static run of a build older than [shaping.adaptive].
if os.environ.get("MODE_KEYS", "1") == "0":
    CARTERO_MODES = {"static": ""}


def env_int(name, default):
    return int(os.environ.get(name, default))


def load_providers(path):
    """The scenario's providers: name, domain, ip, capacity (msgs/s per source IP), connections."""
    with open(path, "rb") as f:
        scenario = tomllib.load(f)
    out = []
    for p in scenario.get("provider", []):
        limits = [p[k] for k in ("messages_per_second",) if k in p]
        limits += [p["messages_per_minute"] / 60] if "messages_per_minute" in p else []
        if not limits:
            raise ValueError(f"provider {p['name']}: no rate limit, so no finite ideal time")
        for unwanted in ("greylist", "random_4xx", "unknown_users", "unknown_user_prefixes",
                         "full_mailboxes"):
            if p.get(unwanted):
                raise ValueError(f"provider {p['name']}: {unwanted} set; the benchmark needs "
                                 "every attempt to depend on pacing alone (see bench/README.md)")
        out.append({
            "name": p["name"],
            "domain": f"{p['name']}.sim.test",
            "ip": p["listen"].rsplit(":", 1)[0],
            "rate": min(limits),
            "conns": p.get("max_connections"),
        })
    if not out:
        raise ValueError(f"{path}: no [[provider]]")
    return out


def plan(n, providers):
    """Messages per provider in proportion to capacity (largest remainder), and the ideal time.

    ideal = max_i(n_i / rate_i), which is N / sum(rate) up to rounding: the time the providers
    need to accept everything if every one of them is kept exactly at its limit from t = 0.
    """
    total = sum(p["rate"] for p in providers)
    exact = [n * p["rate"] / total for p in providers]
    counts = [int(x) for x in exact]
    by_rest = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_rest[: n - sum(counts)]:
        counts[i] += 1
    ideal = max(c / p["rate"] for c, p in zip(counts, providers))
    return counts, ideal


def interleave(counts):
    """Provider indices in sending order, each provider's share spread evenly over the order."""
    keys = [((j + 0.5) / c, i) for i, c in enumerate(counts) for j in range(c)]
    return [i for _, i in sorted(keys)]


def settings():
    scenario = os.environ.get("SCENARIO", os.path.join(ROOT, "bench", "adaptive-scenario.toml"))
    providers = load_providers(scenario)
    n = env_int("N", 100000)
    counts, ideal = plan(n, providers)
    release = os.path.join(ROOT, "target", "release")
    return {
        "n": n,
        "scenario": scenario,
        "providers": providers,
        "counts": counts,
        "capacity": sum(p["rate"] for p in providers),
        "ideal_s": ideal,
        "systems": os.environ.get("SYSTEMS", "adaptive,static,postfix").split(","),
        "timeout": env_int("TIMEOUT", max(600, int(5 * ideal + 0.999))),
        "size": env_int("SIZE", 1000),
        "lanes": env_int("LANES", 20),
        "chunk": env_int("CHUNK", 500),
        "batch": env_int("BATCH", 100),
        "http_threads": env_int("HTTP_THREADS", 8),
        "binary": os.environ.get("CARTERO_BIN", os.path.join(release, "cartero")),
        "sim_binary": os.environ.get("SIM_BIN", os.path.join(release, "cartero-simulator")),
    }


def cartero_toml(path, system, data_dir, smtp_port, http_port, token, routes):
    route_lines = "".join(f'"{d}" = "{ip}:{port}"\n' for d, (ip, port) in routes.items())
    text = f"""# Generated by bench/adaptive.py -- see bench/README.md.
hostname = "bench.cartero.test"
data_dir = "{data_dir}"

[smtp]
listen = ["127.0.0.1:{smtp_port}"]

[http]
listen = "127.0.0.1:{http_port}"
tokens = ["{token}"]

[[delivery.sources]]
name = "s1"
ip = "{SOURCE_IP}"

[delivery.routes]
{route_lines}
{CARTERO_MODES[system]}"""
    with open(path, "w") as f:
        f.write(text)


def postfix_main_cf(base, routes):
    """Postfix defaults plus what relaying to the simulators needs: a transport per domain."""
    os.makedirs(os.path.join(base, "etc"), exist_ok=True)
    with open(os.path.join(base, "etc", "transport"), "w") as f:
        for domain, (ip, port) in routes.items():
            f.write(f"{domain} smtp:[{ip}]:{port}\n")
    return bl.POSTFIX_BASE_CF + (
        "# Each provider domain to its simulator; the same source address as cartero.\n"
        "transport_maps = texthash:{base}/etc/transport\n"
        f"smtp_bind_address = {SOURCE_IP}\n"
    )


def prepare_injection(system, cfg, mta, port):
    """The N messages in interleaved provider order, ready to go: returns start(deadline).

    Everything is built before the clock starts; start() only launches the injector.
    """
    domains = [p["domain"] for p in cfg["providers"]]
    if system == "postfix":
        # smtp-source takes one recipient address per invocation: chunks of at most CHUNK
        # messages of one domain, in interleaved order, LANES connections at once.
        per = [bl.split_counts(c, max(1, -(-c // cfg["chunk"]))) if c else []
               for c in cfg["counts"]]
        jobs = [(f"user@{domains[k]}", per[k].pop()) for k in interleave([len(x) for x in per])]
        return lambda deadline: bl.SmtpSourceJobs(
            port, jobs, cfg["size"], cfg["lanes"], deadline).start()
    # {"address": ...} objects (not plain strings) make one message per recipient, as from
    # smtp-source: a plain-string batch would be one message with many RCPTs per transaction.
    order = interleave(cfg["counts"])
    rcpts = [{"address": f"u{k}@{domains[i]}"} for k, i in enumerate(order)]
    batches = [rcpts[s:s + cfg["batch"]] for s in range(0, len(rcpts), cfg["batch"])]
    raw = bl.raw_message(cfg["size"], "adaptive efficiency")
    return lambda deadline: bl.HttpInjector(
        mta, batches, raw, cfg["http_threads"], deadline).start()


def start_mta(system, cfg, work, routes):
    """The system under test; returns (handle, port, alive())."""
    port = bl.free_port()
    if system == "postfix":
        base = os.path.join(work, "postfix")
        mta = bl.Postfix(base, port, main_cf=postfix_main_cf(base, routes))
        return mta, port, lambda: os.path.exists(f"/proc/{mta.pid}")
    http_port, token = bl.free_port(), secrets.token_hex(16)
    conf = os.path.join(work, f"cartero-{system}.toml")
    cartero_toml(conf, system, os.path.join(work, f"cartero-data-{system}"), port, http_port,
                 token, routes)
    check = subprocess.run([cfg["binary"], "config", "check", conf], capture_output=True,
                           text=True, timeout=60)
    if check.returncode != 0:
        raise RuntimeError(f"cartero refuses {conf}: {check.stdout}{check.stderr}".strip())
    mta = bl.Cartero(cfg["binary"], conf, port, http_port, token,
                     os.path.join(work, f"cartero-{system}.log"))
    return mta, port, lambda: mta.proc.poll() is None


def counts_of(doc):
    t = doc["total"]
    attempts = t["accepted"] + t["throttled"] + t["greylisted"] + t["rejected"] + t["deferred"]
    return t, attempts


def watch(cfg, sim, injector, alive, t0, t0_wall):
    """Polls the simulator's counters until every message has a final outcome or TIMEOUT.

    Returns (finished, doc at the end, seconds to the end, injection seconds, timeline).
    """
    n, deadline = cfg["n"], t0 + cfg["timeout"]
    timeline, next_sample, inject_s = [], t0, None
    while True:
        doc = sim.read()
        now = time.monotonic()
        if inject_s is None and injector.join(0):
            inject_s = now - t0
        t, attempts = counts_of(doc)
        if t["accepted"] + t["rejected"] >= n:
            return True, doc, doc["unix_ms"] / 1000 - t0_wall, inject_s, timeline
        if now >= next_sample:
            timeline.append([round(now - t0, 1), t["accepted"], t["throttled"], attempts,
                             t["connections"]])
            next_sample += 1.0
        if now >= deadline:
            return False, doc, now - t0, inject_s, timeline
        if sim.proc.poll() is not None:
            raise RuntimeError(f"cartero-simulator exited with {sim.proc.returncode}")
        if not alive():
            raise RuntimeError("the MTA under test exited during the run")
        time.sleep(0.05)


def mta_extras(system, mta, work):
    """What the MTA itself says: cartero's counters, or Postfix's maillog statuses."""
    if system == "postfix":
        out = {"sent": 0, "deferred": 0, "bounced": 0}
        try:
            with open(os.path.join(work, "postfix", "maillog"), errors="replace") as f:
                for line in f:
                    for k in out:
                        if f" status={k} " in line:
                            out[k] += 1
        except OSError:
            pass
        return {"maillog_status": out}
    try:
        m = mta.metrics()
    except OSError:
        return {}
    return {"metrics": {k: v for k, v in m.items()
                        if k.startswith("cartero_recipients_") or k.startswith("cartero_queue_")}}


def run_one(system, cfg, work):
    """Runs N messages through one system with a fresh simulator; returns its measurements."""
    sim = bl.Simulator(cfg["sim_binary"], cfg["scenario"],
                       os.path.join(work, f"sim-{system}.json"),
                       os.path.join(work, f"sim-{system}.log"))
    mta, injector = None, None
    try:
        routes = {p["domain"]: sim.addrs[p["name"]] for p in cfg["providers"]}
        mta, port, alive = start_mta(system, cfg, work, routes)
        start = prepare_injection(system, cfg, mta, port)
        t0, t0_wall = time.monotonic(), time.time()
        injector = start(t0 + cfg["timeout"])
        finished, doc, elapsed, inject_s, timeline = watch(cfg, sim, injector, alive, t0, t0_wall)
        t, attempts = counts_of(doc)
        res = {
            "system": system,
            "finished": finished,
            "time_s": elapsed,
            "ratio": elapsed / cfg["ideal_s"],
            "accepted": t["accepted"],
            "delivered_share": t["accepted"] / cfg["n"],
            "throttled": t["throttled"],
            "attempts": attempts,
            "throttled_share": t["throttled"] / attempts if attempts else 0.0,
            "other_refusals": t["greylisted"] + t["rejected"] + t["deferred"],
            "connections": t["connections"],
            "inject_s": inject_s,
            "inject_errors": (injector.errors[:3] if system != "postfix"
                              else ([injector.first_error] if injector.failures else [])),
            "providers": doc["providers"],
            "timeline": timeline,
        }
        res.update(mta_extras(system, mta, work))
        return res
    finally:
        if injector:
            injector.cancel()
        if mta:
            mta.stop()
        sim.stop()


def fmt_row(r, n):
    if "error" in r:
        return f"| {r['system']} | error: {r['error']} | | | | | | | |"
    time_col = f"{r['time_s']:.1f}" if r["finished"] else f"not finished (cap {r['time_s']:.0f})"
    ratio = f"{r['ratio']:.2f}×" if r["finished"] else "–"
    inj = f"{r['inject_s']:.1f}" if r["inject_s"] is not None else "unfinished"
    return (f"| {r['system']} | {time_col} | {ratio} | {r['accepted']:,} / {n:,} "
            f"({100 * r['delivered_share']:.1f} %) | {r['throttled']:,} "
            f"| {100 * r['throttled_share']:.2f} % | {r['attempts']:,} | {r['connections']:,} "
            f"| {inj} |")


def verdict(r):
    if "error" in r:
        return f"- {r['system']}: error"
    ok = (r["finished"] and r["ratio"] <= TARGET_RATIO
          and r["throttled_share"] < TARGET_THROTTLED)
    time_part = f"{r['ratio']:.2f}× ideal" if r["finished"] else "not finished"
    return (f"- {r['system']}: {time_part}, {100 * r['throttled_share']:.2f} % throttled "
            f"(target ≤ {TARGET_RATIO}× and < {100 * TARGET_THROTTLED:.0f} %: "
            f"{'met' if ok else 'NOT met'})")


def report(cfg, facts, results, started):
    caps = ", ".join(f"{p['name']} {p['rate']:g}/s × {p['conns']} conns → {c:,} msgs"
                     for p, c in zip(cfg["providers"], cfg["counts"]))
    lines = [
        f"Run {started} — `N={cfg['n']} TIMEOUT={cfg['timeout']} bench/adaptive.sh`",
        "",
        f"Machine: {facts['nproc']} × {facts['cpu']}, {facts['mem_gib']} GiB RAM, Linux "
        f"{facts['kernel']}, {facts['rustc']}, Postfix {facts['postfix']}.",
        "",
        f"Providers (per source IP): {caps}. Capacity {cfg['capacity']:g} msgs/s; "
        f"**ideal = {cfg['ideal_s']:.1f} s**; cap per system {cfg['timeout']} s.",
        "",
        "| system | time s | × ideal | accepted | throttled attempts | throttled share "
        "| attempts | connections | injection s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(fmt_row(r, cfg["n"]) for r in results),
        "",
        *(verdict(r) for r in results if r["system"] != "postfix"),
    ]
    return "\n".join(lines) + "\n"


def update_docs(block):
    header = ("## Adaptive efficiency\n\n"
              "100,000 messages to four simulated providers whose limits the MTA is not told "
              "(`bench/adaptive-scenario.toml`); time to finish vs the ideal and the share of "
              "attempts throttled. How it works: [bench/README.md](../bench/README.md).\n\n"
              "```sh\nbench/adaptive.sh          # N=100000; ≈ 30 min with the caps\n```")
    bl.replace_block(DOCS, BEGIN, END, block, header)


def cleanup(work):
    """Removes the spools and queues (hundreds of MB at N=100000) unless KEEP=1; results.json,
    configs and logs stay in the work dir."""
    if os.environ.get("KEEP") == "1":
        return
    for name in os.listdir(work):
        if name.startswith("cartero-data-") or name == "postfix":
            subprocess.run(["rm", "-rf", os.path.join(work, name)])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (`cmd &`)
    cfg = settings()
    for s in cfg["systems"]:
        if s not in ("adaptive", "static", "postfix"):
            print(f"unknown system {s!r} in SYSTEMS", file=sys.stderr)
            return 2
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    facts = bench.machine_facts()
    work = tempfile.mkdtemp(prefix="cartero-adaptive.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)  # Postfix daemons (user postfix) must reach their queue inside it
    print(f"work dir {work}; N={cfg['n']}, ideal {cfg['ideal_s']:.1f} s, "
          f"cap {cfg['timeout']} s per system", flush=True)
    results = []
    try:
        for system in cfg["systems"]:
            print(f"== {system}", flush=True)
            try:
                r = run_one(system, cfg, work)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                r = {"system": system, "error": str(e)}
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "timeline"}, indent=1),
                  flush=True)
    except KeyboardInterrupt:
        print("interrupted; every process of the run was stopped", file=sys.stderr)
        cleanup(work)
        return 130
    block = report(cfg, facts, results, started)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"settings": cfg, "machine": facts, "results": results}, f, indent=1)
    print()
    print(block)
    errors = any("error" in r for r in results)
    if os.environ.get("UPDATE_DOCS", "1" if cfg["n"] >= 100000 else "0") == "1" and not errors:
        update_docs(block)
        print(f"updated {DOCS}")
    cleanup(work)
    print(f"results: {os.path.join(work, 'results.json')}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
