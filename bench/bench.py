"""Throughput benchmark: smtp-source -> {direct, cartero, Postfix} -> smtp-sink on loopback.

Driven by bench/run.sh, which builds cartero first. Settings come from the environment (see
bench/README.md): N, DOMAINS, SIZE, LANES, CONNS, MSGS_PER_CONN, SYSTEMS, TIMEOUT, UPDATE_DOCS.
"""

import datetime
import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- bench/run.sh: begin -->", "<!-- bench/run.sh: end -->"


def env_int(name, default):
    return int(os.environ.get(name, default))


def settings():
    n = env_int("N", 100000)
    return {
        "n": n,
        "domains": env_int("DOMAINS", 1000),
        "size": env_int("SIZE", 5000),
        "lanes": env_int("LANES", 20),
        "conns": env_int("CONNS", 50),
        "msgs_per_conn": env_int("MSGS_PER_CONN", 1000),
        "systems": os.environ.get("SYSTEMS", "direct,cartero,postfix").split(","),
        "timeout": env_int("TIMEOUT", 120 + n // 50),
        "binary": os.environ.get("CARTERO_BIN", os.path.join(ROOT, "target", "release", "cartero")),
    }


def run_one(system, cfg, work):
    """Runs the load through one system; returns its measurements."""
    sink_port = bl.free_port()
    sink_log = open(os.path.join(work, f"sink-{system}.log"), "w")
    sink = bl.Sink(sink_port, log=sink_log)
    mta, sampler, mta_cpu, perf = None, None, None, None
    try:
        if system == "direct":
            port = sink_port
        elif system == "cartero":
            port, http_port, token = bl.free_port(), bl.free_port(), secrets.token_hex(16)
            conf = os.path.join(work, "cartero.toml")
            bl.cartero_config(
                conf, os.path.join(work, "cartero-data"), port, http_port,
                f"127.0.0.1:{sink_port}", token, cfg["conns"], cfg["msgs_per_conn"],
            )
            mta = bl.Cartero(cfg["binary"], conf, port, http_port, token,
                             os.path.join(work, "cartero.log"))
            sampler = bl.MemSampler(lambda: [mta.pid]).start()
            mta_cpu = lambda: bl.cpu_seconds(mta.pid)  # noqa: E731
            if os.environ.get("PERF") == "1":
                perf = subprocess.Popen(
                    ["perf", "record", "-q", "-F", "499", "-g", "-p", str(mta.pid),
                     "-o", os.path.join(work, "perf.data")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif system == "postfix":
            port = bl.free_port()
            # Enough smtpd + smtp processes for the injectors and the outbound connections.
            procs = max(100, cfg["lanes"] + cfg["conns"] + 20)
            mta = bl.Postfix(os.path.join(work, "postfix"), port, sink_port, cfg["conns"], procs)
            sampler = bl.MemSampler(mta.pids).start()
            mta_cpu = mta.cpu
        else:
            raise ValueError(f"unknown system {system}")

        cpu0 = mta_cpu() if mta_cpu else 0.0
        sink_cpu0 = sink.cpu()
        inj0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        mach0 = bl.machine_cpu()
        t0 = time.monotonic()
        failures, err = bl.inject_smtp_source(
            port, cfg["n"], cfg["domains"], cfg["size"], cfg["lanes"], cfg["timeout"]
        )
        t_inj = time.monotonic()
        inj1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        left = max(1.0, cfg["timeout"] - (t_inj - t0))
        t_end = sink.wait_for(cfg["n"], left)
        mach1 = bl.machine_cpu()
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=120)
        res = {
            "system": system,
            "received": sink.count,
            "complete": t_end is not None,
            "inject_failures": failures,
            "inject_error": err,
            "inject_s": t_inj - t0,
            "wall_s": (t_end if t_end is not None else time.monotonic()) - t0,
            "injector_cpu_s": (inj1.ru_utime + inj1.ru_stime) - (inj0.ru_utime + inj0.ru_stime),
            "sink_cpu_s": sink.cpu() - sink_cpu0,
            "machine_busy_pct": 100.0 * (mach1[0] - mach0[0]) / max(1, mach1[1] - mach0[1])
            * os.cpu_count(),
        }
        res["msgs_per_s"] = sink.count / res["wall_s"] if res["wall_s"] > 0 else 0.0
        res["cpu_s"] = mta_cpu() - cpu0 if mta_cpu else None
        # CPU the machine spent on anything but the MTA, the injectors and the sink: other
        # users' work (compilers, tests) that competed with this run, plus this script.
        busy_s = (mach1[0] - mach0[0]) / CLK
        res["others_cpu_s"] = (busy_s - (res["cpu_s"] or 0.0)
                               - res["injector_cpu_s"] - res["sink_cpu_s"])
        if mta_cpu:
            sampler.stop()
            res["peak_rss_kb"] = sampler.peak_rss_kb
            res["peak_pss_kb"] = sampler.peak_pss_kb
            res["peak_procs"] = sampler.peak_procs
        if system == "cartero":
            res["vm_hwm_kb"] = bl.status_kb(mta.pid, "VmHWM")
            res["peak_rss_kb"] = max(res["peak_rss_kb"], res["vm_hwm_kb"])
            res["metrics"] = {k: v for k, v in mta.metrics().items()
                              if k.startswith("cartero_") and not k.endswith("_bucket")}
        return res
    finally:
        if sampler:
            sampler.stop()
        if mta:
            mta.stop()
        sink.stop()
        sink_log.close()


def cmd_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_facts():
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": cmd_out(["rustc", "--version"]),
        "postfix": cmd_out(["postconf", "-dh", "mail_version"]),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def fmt_mib(kb):
    return f"{kb / 1024:.0f} MiB" if kb else "–"


def table(cfg, results):
    by = {r["system"]: r for r in results}
    lines = [
        "| system | msgs/s | wall s | all at sink | vs direct | MTA CPU s (user+sys) | MTA CPU ms/msg "
        "| MTA peak RSS | MTA peak PSS | injector CPU s | sink CPU s | machine busy | others' CPU s |",
        "|---|---:|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    direct = by.get("direct", {}).get("msgs_per_s")
    for r in results:
        vs = f"{r['msgs_per_s'] / direct:.2f}" if direct else "–"
        cpu = r.get("cpu_s")
        per = f"{1000 * cpu / max(1, r['received']):.2f}" if cpu is not None else "–"
        done = "yes" if r["complete"] else f"NO ({r['received']})"
        cpu_cols = f"{cpu:.1f} | {per}" if cpu is not None else "– | –"
        lines.append(
            f"| {r['system']} | {r['msgs_per_s']:.0f} | {r['wall_s']:.1f} | {done} | {vs} "
            f"| {cpu_cols} | {fmt_mib(r.get('peak_rss_kb', 0))} "
            f"| {fmt_mib(r.get('peak_pss_kb', 0))} | {r['injector_cpu_s']:.1f} "
            f"| {r['sink_cpu_s']:.1f} | {r['machine_busy_pct']:.0f}% | {r['others_cpu_s']:.1f} |"
        )
    out = "\n".join(lines) + "\n"
    c, p, d = (by.get(s, {}).get("msgs_per_s") for s in ("cartero", "postfix", "direct"))
    if c and p:
        out += f"\n- cartero / Postfix = **{c / p:.2f}×** (target ≥ 3×: {'met' if c / p >= 3 else 'NOT met'})"
    if c and d:
        out += f"\n- cartero / direct = **{c / d:.2f}** (target ≥ 0.5: {'met' if c / d >= 0.5 else 'NOT met'})"
    return out + "\n"


def report(cfg, facts, results, started):
    cmd = (f"N={cfg['n']} DOMAINS={cfg['domains']} SIZE={cfg['size']} LANES={cfg['lanes']} "
           f"CONNS={cfg['conns']} MSGS_PER_CONN={cfg['msgs_per_conn']} bench/run.sh")
    md = [
        f"Run {started} — `{cmd}`",
        "",
        f"Machine: {facts['nproc']} × {facts['cpu']}, {facts['mem_gib']} GiB RAM, Linux "
        f"{facts['kernel']}, {facts['rustc']}, Postfix {facts['postfix']}; load average at start "
        f"{' '.join(facts['loadavg'])}, at end {' '.join(open('/proc/loadavg').read().split()[:3])}.",
        "",
        table(cfg, results),
    ]
    return "\n".join(md)


def update_docs(block):
    text = open(DOCS).read() if os.path.exists(DOCS) else "# Benchmarks\n\n"
    new = f"{BEGIN}\n{block}{END}"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        text = pre + new + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Latest run of bench/run.sh\n\n" + new + "\n"
    with open(DOCS, "w") as f:
        f.write(text)


def main():
    cfg = settings()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    facts = machine_facts()
    work = tempfile.mkdtemp(prefix="cartero-bench.", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)  # Postfix daemons (user postfix) must reach their queue inside it
    print(f"work dir {work}; load {facts['loadavg']}", flush=True)
    results = []
    for system in cfg["systems"]:
        print(f"== {system}: {cfg['n']} messages", flush=True)
        r = run_one(system, cfg, work)
        results.append(r)
        print(json.dumps(r, indent=1), flush=True)
    block = report(cfg, facts, results, started)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"settings": cfg, "machine": facts, "results": results}, f, indent=1)
    print()
    print(block)
    want_docs = os.environ.get("UPDATE_DOCS", "1" if cfg["n"] >= 100000 else "0") == "1"
    if want_docs:
        update_docs(block)
        print(f"updated {DOCS}")
    if os.environ.get("KEEP") != "1":
        subprocess.run(["rm", "-rf", work])
    return 0 if all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
