"""Adaptive-efficiency benchmark: mixes of simulated providers whose limits the MTA is not told,
each sent for several lengths of ideal sending time, through cartero adaptive, cartero static
and Postfix; time to finish against the ideal and the share of delivery attempts throttled or
refused, all in one table.

Driven by bench/adaptive.sh. Settings from the environment (see bench/README.md, "Adaptive
efficiency"): MIXES, MINUTES, N, SCENARIO, SYSTEMS, CAP_RATIO, TIMEOUT, SIZE, LANES, CHUNK,
BATCH, HTTP_THREADS, PROGRESS, UPDATE_DOCS, KEEP, BENCH_DIR, CARTERO_BIN, SIM_BIN, MODE_KEYS.
"""

import datetime
import http.client
import json
import math
import os
import re
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
from adaptive_report import (  # noqa: E402
    DEFAULT_SYSTEMS, DOCS, hms, length_text, merge, report, summary, update_docs)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIX_DIR = os.path.join(ROOT, "bench", "adaptive")
SOURCE_IP = "127.0.0.2"  # the one egress address, for cartero and Postfix alike
DEFAULT_MIXES = ("rate", "conns", "both", "reputation", "greylist")
DEFAULT_MINUTES = (1.0, 5.0)
# Scenario keys that make messages fail or wait for reasons pacing has nothing to do with, and
# that no ideal can account for. Greylisting is allowed: its cost is known (see provider_ideal).
UNWANTED = ("random_4xx", "unknown_users", "unknown_user_prefixes", "full_mailboxes")
# The settings a run is reproduced with, echoed in the report's command line when set.
ECHOED = ("SCENARIO", "MIXES", "MINUTES", "N", "SYSTEMS", "CAP_RATIO", "TIMEOUT", "SIZE", "LANES",
          "CHUNK", "BATCH", "HTTP_THREADS", "MODE_KEYS")

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


def env_set(name):
    """True when `name` is set to something: an empty value counts as unset."""
    return bool(os.environ.get(name, "").strip())


def env_int(name, default):
    return int(os.environ[name]) if env_set(name) else default


def env_float(name, default):
    return float(os.environ[name]) if env_set(name) else default


def env_list(name, default):
    """A comma-separated setting as a list of its non-empty items."""
    text = os.environ[name] if env_set(name) else ",".join(default)
    return [item.strip() for item in text.split(",") if item.strip()]


# ---------------------------------------------------------------------------------------------
# Scenarios, lengths and the ideal

DURATION_PART = re.compile(r"\s*(\d+)\s*([a-z]+)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60,
                  "h": 3600, "hr": 3600, "hrs": 3600}


def duration_s(text):
    """Seconds in a duration written as the simulator reads it ("60s", "2m", "1m 30s", "500ms").

    Only the units a scenario plausibly uses; anything else is refused rather than misread,
    since a wrong greylist delay would silently give a wrong ideal.
    """
    text, pos, total = text.strip(), 0, 0.0
    if not text:
        raise ValueError("empty duration")
    while pos < len(text):
        m = DURATION_PART.match(text, pos)
        if not m or m.group(2) not in DURATION_UNITS:
            raise ValueError(f"duration {text!r} not understood (write e.g. 60s, 2m, 1m30s)")
        total += int(m.group(1)) * DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


def load_providers(path):
    """The scenario's providers: name, domain, style, the limits as written (mps, mpm, conns),
    rate (msgs/s per source IP, the tighter of the two rate limits) and greylist_s (the greylist
    delay in seconds, None without greylisting)."""
    with open(path, "rb") as f:
        scenario = tomllib.load(f)
    out = []
    for p in scenario.get("provider", []):
        mps, mpm = p.get("messages_per_second"), p.get("messages_per_minute")
        limits = [x for x in (mps, None if mpm is None else mpm / 60) if x is not None]
        if not limits or min(limits) <= 0:
            raise ValueError(f"{path}: provider {p['name']}: no rate limit above 0, so no "
                             "finite ideal")
        for unwanted in UNWANTED:
            if p.get(unwanted):
                raise ValueError(f"{path}: provider {p['name']}: {unwanted} set; the benchmark "
                                 "needs every message to end accepted (see bench/README.md)")
        greylist = p.get("greylist")
        out.append({
            "name": p["name"],
            "domain": f"{p['name']}.sim.test",
            "ip": p["listen"].rsplit(":", 1)[0],
            "style": p.get("style", "generic"),
            "mps": mps,
            "mpm": mpm,
            "conns": p.get("max_connections"),
            "rate": min(limits),
            "greylist_s": None if greylist is None else duration_s(greylist),
        })
    if not out:
        raise ValueError(f"{path}: no [[provider]]")
    return out


def provider_ideal(n, p):
    """Seconds a perfect sender needs for `n` messages at provider `p`.

    Without greylisting, n / rate: the provider kept exactly at its limit from t = 0. With
    greylisting every message's first attempt is refused at RCPT TO after it has used up rate at
    MAIL FROM, so 2 n attempts pass through the rate limit, and the last first attempt (no
    earlier than n / rate) still waits the greylist delay g for its retry:
    max(2 n / rate, n / rate + g). A delay of 0 still refuses every first attempt.
    """
    if n == 0:
        return 0.0
    t = n / p["rate"]
    g = p["greylist_s"]
    return t if g is None else max(2 * t, t + g)


def plan(n, providers):
    """Messages per provider in proportion to rate (largest remainder), and the ideal time.

    ideal = max_i(ideal_i) (provider_ideal). Without greylisting that is max_i(n_i / rate_i),
    N / sum(rate) up to rounding: every provider is busy for the same time.
    """
    total = sum(p["rate"] for p in providers)
    exact = [n * p["rate"] / total for p in providers]
    counts = [int(x) for x in exact]
    by_rest = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_rest[: n - sum(counts)]:
        counts[i] += 1
    ideal = max(provider_ideal(c, p) for c, p in zip(counts, providers))
    return counts, ideal


def interleave(counts):
    """Provider indices in sending order, each provider's share spread evenly over the order."""
    keys = [((j + 0.5) / c, i) for i, c in enumerate(counts) for j in range(c)]
    return [i for _, i in sorted(keys)]


def mix_files():
    """[(mix name, scenario path)]: SCENARIO alone (the single-scenario mode), or the MIXES of
    bench/adaptive/, each NAME.toml there."""
    if env_set("SCENARIO"):
        path = os.environ["SCENARIO"]
        return [(os.path.splitext(os.path.basename(path))[0], path)]
    out = []
    for name in env_list("MIXES", DEFAULT_MIXES):
        path = os.path.join(MIX_DIR, f"{name}.toml")
        if not os.path.exists(path):
            known = sorted(f[:-5] for f in os.listdir(MIX_DIR) if f.endswith(".toml"))
            raise ValueError(f"no mix {name!r} ({path} does not exist; mixes: {', '.join(known)})")
        out.append((name, path))
    if not out:
        raise ValueError("MIXES names no mix")
    return out


def lengths():
    """[(minutes, n)] with one of the two None. N, when set, is one length of exactly N messages
    (quick checks); the single-scenario mode keeps its old default of N = 100000 unless MINUTES
    is set; otherwise every MINUTES entry is a length of ideal sending time."""
    if env_set("N"):
        n = env_int("N", 0)
        if n < 1:
            raise ValueError("N must be at least 1")
        return [(None, n)]
    if env_set("SCENARIO") and not env_set("MINUTES"):
        return [(None, 100000)]
    items = env_list("MINUTES", [f"{m:g}" for m in DEFAULT_MINUTES])
    try:
        minutes = [float(m) for m in items]
    except ValueError:
        minutes = []
    if not minutes or any(m <= 0 for m in minutes):
        raise ValueError(f"MINUTES={','.join(items)!r}: give lengths in minutes above 0, "
                         "e.g. 1,5")
    return [(m, None) for m in minutes]


def cap_of(ideal):
    """Seconds a run may take: TIMEOUT when set (absolute), else CAP_RATIO × ideal, at least 60."""
    if env_set("TIMEOUT"):
        return env_int("TIMEOUT", 0)
    return max(60, math.ceil(env_float("CAP_RATIO", 3) * ideal))


def plan_run(mix, path, providers, minutes, n, order):
    """One (mix, length): N (capacity × 60 × minutes unless given), the counts, ideal and cap."""
    capacity = sum(p["rate"] for p in providers)
    if n is None:
        n = max(1, round(capacity * 60 * minutes))
    counts, ideal = plan(n, providers)
    return {
        "id": f"{mix}-{minutes:g}m" if minutes is not None else f"{mix}-n{n}",
        "order": order,
        "mix": mix,
        "scenario": path,
        "minutes": minutes,
        "n": n,
        "providers": [dict(p, messages=c, ideal_s=provider_ideal(c, p))
                      for p, c in zip(providers, counts)],
        "counts": counts,
        "capacity": capacity,
        "ideal_s": ideal,
        "cap_s": cap_of(ideal),
        "results": [],
    }


def planned_runs():
    """Every (mix, length), length by length in the order of MINUTES: with the default 1,5 a
    long full run shows every mix early. The table sorts them by mix again.

    All scenario files are read here, before anything starts, so a bad one stops the run at once.
    """
    mixes = [(name, path, load_providers(path)) for name, path in mix_files()]
    runs = []
    for li, (minutes, n) in enumerate(lengths()):
        for mi, (name, path, providers) in enumerate(mixes):
            runs.append(plan_run(name, path, providers, minutes, n, (mi, li)))
    return runs


def settings():
    release = os.path.join(ROOT, "target", "release")
    return {
        "systems": env_list("SYSTEMS", DEFAULT_SYSTEMS),
        "size": env_int("SIZE", 1000),
        "lanes": env_int("LANES", 20),
        "chunk": env_int("CHUNK", 500),
        "batch": env_int("BATCH", 100),
        "http_threads": env_int("HTTP_THREADS", 8),
        "progress_s": env_int("PROGRESS", 60),
        "cap_ratio": env_float("CAP_RATIO", 3),
        "timeout": env_int("TIMEOUT", None),
        "binary": os.environ.get("CARTERO_BIN", os.path.join(release, "cartero")),
        "sim_binary": os.environ.get("SIM_BIN", os.path.join(release, "cartero-simulator")),
        "command": " ".join([*(f"{k}={os.environ[k]}" for k in ECHOED if env_set(k)),
                             "bench/adaptive.sh"]),
    }


def is_default_run(cfg, runs):
    """True when the run is the documented one: the default mixes, lengths and systems."""
    mixes = list(dict.fromkeys(r["mix"] for r in runs))
    minutes = list(dict.fromkeys(r["minutes"] for r in runs))
    return (not env_set("SCENARIO") and not env_set("N")
            and mixes == list(DEFAULT_MIXES) and minutes == list(DEFAULT_MINUTES)
            and cfg["systems"] == list(DEFAULT_SYSTEMS))


# ---------------------------------------------------------------------------------------------
# The systems under test


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


def prepare_injection(system, run, cfg, mta, port):
    """The N messages in interleaved provider order, ready to go: returns start(deadline).

    Everything is built before the clock starts; start() only launches the injector. Every
    message has a recipient of its own, as greylisting (keyed on sender and recipient) needs
    for its cost to be the same for every system.
    """
    domains = [p["domain"] for p in run["providers"]]
    if system == "postfix":
        # smtp-source takes one recipient address per invocation: chunks of at most CHUNK
        # messages of one domain, in interleaved order, LANES connections at once. `-N` numbers
        # the recipients of one invocation (1c7.user, 2c7.user, ...), and the chunk's own
        # base (c7.user) keeps them apart from every other chunk's.
        per = [bl.split_counts(c, max(1, -(-c // cfg["chunk"]))) if c else []
               for c in run["counts"]]
        order = interleave([len(x) for x in per])
        jobs = [(f"c{j}.user@{domains[k]}", per[k].pop()) for j, k in enumerate(order)]
        return lambda deadline: bl.SmtpSourceJobs(
            port, jobs, cfg["size"], cfg["lanes"], deadline, extra=["-N"]).start()
    # One message per recipient, as from smtp-source: cartero stores raw content once for all
    # the recipients of a request that bring nothing of their own (one message, many RCPTs per
    # transaction), so each recipient carries metadata of its own.
    order = interleave(run["counts"])
    rcpts = [{"address": f"u{k}@{domains[i]}", "metadata": {"n": str(k)}}
             for k, i in enumerate(order)]
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


class MaillogFailures:
    """Postfix's final failures so far (status=bounced or status=expired lines of its maillog),
    reading only what was appended since the last call: the maillog of a long run is large."""

    def __init__(self, path):
        self.path, self.offset, self.count, self.tail = path, 0, 0, b""

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.count
        self.offset += len(chunk)
        lines = (self.tail + chunk).split(b"\n")
        self.tail = lines.pop()
        self.count += sum(1 for line in lines
                          if b" status=bounced" in line or b" status=expired" in line)
        return self.count


def final_failures(system, mta, work):
    """A callable giving how many messages the MTA has given up on (bounced or expired).

    Only the MTA knows: the simulator counts refusals, and a 554 at the banner refuses a
    connection, not a message. Asked only once the simulator has refused something for good.
    """
    if system == "postfix":
        return MaillogFailures(os.path.join(work, "postfix", "maillog"))
    last = [0]

    def count():
        try:
            m = mta.metrics()
        except (OSError, http.client.HTTPException):
            return last[0]
        last[0] = int(m.get("cartero_recipients_bounced_total", 0)
                      + m.get("cartero_recipients_expired_total", 0))
        return last[0]
    return count


# ---------------------------------------------------------------------------------------------
# One run


def counts_of(doc):
    """(total counters, attempts, throttled or refused) of a stats document.

    attempts = every reply that ended a message attempt; throttled or refused = all of them but
    accepted and greylisted. refused_connections is absent from older simulator builds.
    """
    t = doc["total"]
    attempts = t["accepted"] + t["throttled"] + t["greylisted"] + t["rejected"] + t["deferred"]
    return t, attempts, t["throttled"] + t["rejected"] + t["deferred"]


def share(part, whole):
    return part / whole if whole else 0.0


def watch(run, cfg, sim, injector, alive, failures, t0, t0_wall):
    """Polls the simulator's counters until every message has a final outcome or the cap.

    Final: accepted by the simulator, or (once it has refused something for good) given up by
    the MTA. Returns {finished, doc, elapsed, inject_s, bounced, timeline}.
    """
    n, deadline = run["n"], t0 + run["cap_s"]
    out = {"finished": False, "inject_s": None, "bounced": 0, "timeline": []}
    next_sample, next_progress = t0, t0 + (cfg["progress_s"] or math.inf)
    while True:
        doc = sim.read()
        now = time.monotonic()
        if out["inject_s"] is None and injector.join(0):
            out["inject_s"] = now - t0
        t, attempts, refused = counts_of(doc)
        if t["accepted"] >= n:
            return dict(out, finished=True, doc=doc, elapsed=doc["unix_ms"] / 1000 - t0_wall)
        if now >= next_sample:
            if t["rejected"]:
                out["bounced"] = failures()
                if t["accepted"] + out["bounced"] >= n:
                    return dict(out, finished=True, doc=doc, elapsed=now - t0)
            out["timeline"].append([round(now - t0, 1), t["accepted"], t["throttled"], attempts,
                                    t["connections"], t["greylisted"],
                                    t.get("refused_connections")])
            while next_sample <= now:
                next_sample += 1.0
        if now >= next_progress:
            print(f"      {now - t0:.0f} s: accepted {t['accepted']:,} / {n:,}, "
                  f"{100 * share(refused, attempts):.2f} % throttled or refused, "
                  f"{t['greylisted']:,} greylisted", flush=True)
            next_progress += cfg["progress_s"]
        if now >= deadline:
            return dict(out, doc=doc, elapsed=now - t0)
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
    except (OSError, http.client.HTTPException):
        return {}
    return {"metrics": {k: v for k, v in m.items()
                        if k.startswith("cartero_recipients_") or k.startswith("cartero_queue_")}}


def measurements(system, run, w, injector):
    """The result of one system's run, from what watch() saw at the end."""
    t, attempts, refused = counts_of(w["doc"])
    return {
        "system": system,
        "finished": w["finished"],
        "time_s": w["elapsed"],
        "ratio": w["elapsed"] / run["ideal_s"],
        "accepted": t["accepted"],
        "delivered_share": t["accepted"] / run["n"],
        "bounced": w["bounced"],
        "attempts": attempts,
        "throttled": t["throttled"],
        "rejected": t["rejected"],
        "deferred": t["deferred"],
        "refused": refused,
        "refused_share": share(refused, attempts),
        "throttled_share": share(t["throttled"], attempts),
        "refused_connections": t.get("refused_connections"),
        "greylisted": t["greylisted"],
        "connections": t["connections"],
        "blocks": t.get("blocks", 0),
        "inject_s": w["inject_s"],
        "inject_errors": (injector.errors[:3] if system != "postfix"
                          else ([injector.first_error] if injector.failures else [])),
        "providers": w["doc"]["providers"],
        "timeline": w["timeline"],
    }


def run_one(system, run, cfg, work):
    """Runs one (mix, length) through one system with a fresh simulator and a fresh data dir."""
    sim = bl.Simulator(cfg["sim_binary"], run["scenario"],
                       os.path.join(work, f"sim-{system}.json"),
                       os.path.join(work, f"sim-{system}.log"))
    mta, injector = None, None
    try:
        routes = {p["domain"]: sim.addrs[p["name"]] for p in run["providers"]}
        mta, port, alive = start_mta(system, cfg, work, routes)
        start = prepare_injection(system, run, cfg, mta, port)
        failures = final_failures(system, mta, work)
        t0, t0_wall = time.monotonic(), time.time()
        injector = start(t0 + run["cap_s"])
        w = watch(run, cfg, sim, injector, alive, failures, t0, t0_wall)
        res = measurements(system, run, w, injector)
        res.update(mta_extras(system, mta, work))
        return res
    finally:
        if injector:
            injector.cancel()
        if mta:
            mta.stop()
        sim.stop()


# ---------------------------------------------------------------------------------------------
# Main


def save(path, doc):
    """results.json after every system's run (written aside, then renamed), so an interrupted
    or crashed long run keeps what it measured."""
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(path + ".tmp", path)


def cleanup(work):
    """Removes one run's spool or queue (GBs after a long run) unless KEEP=1; its configs, logs
    and simulator stats stay in the run's directory."""
    if os.environ.get("KEEP") == "1":
        return
    for name in os.listdir(work):
        if name.startswith("cartero-data-") or name == "postfix":
            subprocess.run(["rm", "-rf", os.path.join(work, name)])


def run_all(cfg, runs, work, doc, results_path):
    """Every system on every (mix, length), in order, each against fresh processes."""
    total, k = len(runs) * len(cfg["systems"]), 0
    for run in runs:
        run_dir = os.path.join(work, run["id"])
        os.makedirs(run_dir, exist_ok=True)
        for system in cfg["systems"]:
            k += 1
            print(f"[{k}/{total}] {run['mix']}, {length_text(run)}: N={run['n']:,}, ideal "
                  f"{run['ideal_s']:.1f} s, cap {run['cap_s']} s — {system}", flush=True)
            try:
                r = run_one(system, run, cfg, run_dir)
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
                r = {"system": system, "error": str(e)}
            finally:
                cleanup(run_dir)
            run["results"].append(r)
            print(summary(run, r), flush=True)
            save(results_path, doc)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    if os.environ.get("MERGE"):
        try:
            block = merge(os.environ["MERGE"].split(","))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            print(f"bench/adaptive.py: MERGE: {e}", file=sys.stderr)
            return 2
        print(block)
        if os.environ.get("UPDATE_DOCS", "1") == "1":
            update_docs(block)
            print(f"updated {DOCS}")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (`cmd &`)
    cfg = settings()
    for s in cfg["systems"]:
        if s not in DEFAULT_SYSTEMS:
            print(f"unknown system {s!r} in SYSTEMS", file=sys.stderr)
            return 2
        if s != "postfix" and s not in CARTERO_MODES:
            print(f"SYSTEMS has {s!r}, but MODE_KEYS=0 runs only static and postfix",
                  file=sys.stderr)
            return 2
    try:
        runs = planned_runs()
    except (ValueError, OSError, KeyError, tomllib.TOMLDecodeError) as e:
        print(f"bench/adaptive.py: {e}", file=sys.stderr)
        return 2
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    facts = bench.machine_facts()
    work = tempfile.mkdtemp(prefix="cartero-adaptive.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)  # Postfix daemons (user postfix) must reach their queues inside it
    results_path = os.path.join(work, "results.json")
    doc = {"settings": cfg, "machine": facts, "started": started, "runs": runs}
    longest = sum(r["cap_s"] for r in runs) * len(cfg["systems"])
    print(f"work dir {work}; {len(runs)} (mix, length) × {len(cfg['systems'])} systems; "
          f"at most {hms(longest)} (the sum of the caps)", flush=True)
    t0 = time.monotonic()
    try:
        run_all(cfg, runs, work, doc, results_path)
    except KeyboardInterrupt:
        print("interrupted; every process of the run was stopped", file=sys.stderr)
        print(report(cfg, facts, runs, started, time.monotonic() - t0))
        print(f"results so far: {results_path}")
        return 130
    block = report(cfg, facts, runs, started, time.monotonic() - t0)
    doc["wall_s"] = time.monotonic() - t0
    save(results_path, doc)
    print()
    print(block)
    errors = any("error" in r for run in runs for r in run["results"])
    default = "1" if is_default_run(cfg, runs) else "0"
    if os.environ.get("UPDATE_DOCS", default) == "1" and not errors:
        update_docs(block)
        print(f"updated {DOCS}")
    print(f"results: {results_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
