"""The report of bench/adaptive.py: the table, the verdicts, the docs block, and the merge of
runs done in parts (MERGE=). Kept apart from the driver so each stays readable."""

import json
import os

import benchlib as bl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- bench/adaptive.sh:begin -->", "<!-- bench/adaptive.sh:end -->"
TARGET_RATIO, TARGET_REFUSED = 1.15, 0.01
DEFAULT_SYSTEMS = ("adaptive", "static", "postfix")

def length_text(run):
    return f"{run['minutes']:g} min" if run["minutes"] is not None else f"N = {run['n']:,}"


def limits_text(p):
    """A provider's limits as a reader of the table wants them: "90/s, 4 conns"."""
    parts = [f"{p['mps']:,}/s"] if p["mps"] is not None else []
    parts += [f"{p['mpm']:,}/min"] if p["mpm"] is not None else []
    if p["conns"]:
        parts.append(f"{p['conns']} conn{'s' if p['conns'] > 1 else ''}")
    else:
        parts.append("no connection limit")
    if p["greylist_s"] is not None:
        parts.append(f"greylist {p['greylist_s']:g} s")
    return ", ".join(parts)


def mix_lines(runs):
    """One line per mix: its capacity and each provider's style and limits."""
    seen, lines = set(), []
    for run in sorted(runs, key=lambda r: r["order"]):
        if run["mix"] in seen:
            continue
        seen.add(run["mix"])
        provs = "; ".join(f"{p['name']} ({p['style']}) {limits_text(p)}"
                          for p in run["providers"])
        lines.append(f"- `{run['mix']}` ({run['capacity']:g} msgs/s): {provs}")
    return lines


def one_line(text, limit=160):
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fmt_row(run, r):
    minutes = f"{run['minutes']:g}" if run["minutes"] is not None else "–"
    lead = (f"| {run['mix']} | {minutes} | {run['n']:,} | {run['ideal_s']:.1f} "
            f"| {r['system']} ")
    if "error" in r:
        return lead + f"| error: {one_line(r['error'])} | | | | | | |"
    if r["finished"]:
        time_col, ratio = f"{r['time_s']:.1f}", f"{r['ratio']:.2f}×"
    else:
        time_col = f"not finished (cap {run['cap_s']:.0f})"
        ratio = f"> {run['cap_s'] / run['ideal_s']:.2f}×"
    accepted = f"{r['accepted']:,} ({100 * r['delivered_share']:.1f} %)"
    if r["bounced"]:
        accepted += f", {r['bounced']:,} bounced"
    conns = r["refused_connections"]
    return (lead + f"| {time_col} | {ratio} | {accepted} "
            f"| {100 * r['refused_share']:.2f} % ({r['refused']:,}) "
            f"| {'–' if conns is None else f'{conns:,}'} | {r['greylisted']:,} "
            f"| {r['connections']:,} |")


def met(run, r):
    """The issue's target: finished with every message accepted, ≤ 1.15× the ideal, < 1 %
    throttled or refused attempts."""
    return (r["finished"] and r["accepted"] >= run["n"] and r["ratio"] <= TARGET_RATIO
            and r["refused_share"] < TARGET_REFUSED)


def verdict(run):
    """The target line for cartero adaptive in one (mix, length); None when it did not run."""
    r = next((x for x in run["results"] if x["system"] == "adaptive"), None)
    if r is None:
        return None
    target = f"target ≤ {TARGET_RATIO}× and < {100 * TARGET_REFUSED:g} %"
    where = f"- {run['mix']}, {length_text(run)}: cartero adaptive"
    if "error" in r:
        return f"{where} failed with an error ({target}: NOT met)"
    time_part = f"{r['ratio']:.2f}× ideal" if r["finished"] else "not finished by the cap"
    lost = f", {run['n'] - r['accepted']:,} not accepted" if r["accepted"] < run["n"] else ""
    return (f"{where} {time_part}, {100 * r['refused_share']:.2f} % throttled or refused"
            f"{lost} ({target}: {'met' if met(run, r) else 'NOT met'})")


def hms(seconds):
    h, rest = divmod(int(seconds + 0.5), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def report(cfg, facts, runs, started, wall_s):
    ordered = sorted(runs, key=lambda r: r["order"])
    cap_rule = (f"TIMEOUT = {cfg['timeout']} s" if cfg["timeout"]
                else f"{cfg['cap_ratio']:g} × ideal, at least 60 s")
    lines = [
        f"Run {started} — `{cfg['command']}`",
        "",
        f"Machine: {facts['nproc']} × {facts['cpu']}, {facts['mem_gib']} GiB RAM, Linux "
        f"{facts['kernel']}, {facts['rustc']}, Postfix {facts['postfix']}.",
        "",
        "Mixes (limits per source IP, none told to the MTA; N = capacity × 60 × minutes, spread "
        "over the providers in proportion to their rates):",
        "",
        *mix_lines(runs),
        "",
        f"Ideal: max over providers of n / rate, or max(2 n / rate, n / rate + greylist delay) "
        f"where the provider greylists. Cap per run: {cap_rule}. Throttled or refused = "
        "throttled + rejected + deferred attempts, as a share of all attempts (greylisting "
        "apart).",
        "",
        "| mix | minutes | N | ideal s | system | time s | × ideal | accepted "
        "| throttled+refused share | refused connections | greylisted | connections |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *(fmt_row(run, r) for run in ordered for r in run["results"]),
        "",
        *filter(None, (verdict(run) for run in ordered)),
        *(["", f"Whole run: {hms(wall_s)}."] if wall_s else []),
    ]
    return "\n".join(lines) + "\n"


def summary(run, r):
    """The progress line printed when one system's run ends."""
    if "error" in r:
        return f"    {r['system']}: error: {one_line(r['error'], 300)}"
    time_part = (f"{r['time_s']:.1f} s ({r['ratio']:.2f}× ideal)" if r["finished"]
                 else f"not finished by the cap ({run['cap_s']} s)")
    return (f"    {r['system']}: {time_part}, accepted {r['accepted']:,} / {run['n']:,}, "
            f"{100 * r['refused_share']:.2f} % throttled or refused, "
            f"{r['greylisted']:,} greylisted, {r['connections']:,} connections")


DOCS_HEADER = (
    "## Adaptive efficiency\n\n"
    "Five mixes of simulated providers whose limits the MTA is not told (`bench/adaptive/`: "
    "`rate`, rate limits only; `conns`, connection limits; `both`, both, one of them per "
    "minute; `reputation`, `both` with a harsh reputation; `greylist`, `rate` with two "
    "providers greylisting), each sent for 1 and 5 minutes of ideal sending time, through "
    "cartero adaptive, cartero static and Postfix: time to finish vs the ideal, and the share "
    "of attempts throttled or refused. Target for cartero adaptive: ≤ 1.15× the ideal and "
    "< 1 % throttled or refused. How it works: [bench/README.md](../bench/README.md).\n\n"
    "```sh\n"
    "bench/adaptive.sh          # 5 mixes × 1 and 5 min × 3 systems; ≈ 4–5½ h with the caps\n"
    "```\n"
)


def replace_header(path, header):
    """Rewrites the text from the header's heading line to the BEGIN marker: the section's
    introduction describes the run below it, so it changes when a run of another kind writes."""
    with open(path) as f:
        text = f.read()
    heading = header.split("\n", 1)[0] + "\n"
    start = text.find(heading)
    stop = text.find(BEGIN, start)
    if start < 0 or stop < 0:
        return
    with open(path, "w") as f:
        f.write(text[:start] + header.rstrip("\n") + "\n\n" + text[stop:])


def update_docs(block):
    bl.replace_block(DOCS, BEGIN, END, block, DOCS_HEADER)
    replace_header(DOCS, DOCS_HEADER)


def system_rank(system):
    """Rows of a mix × length in the order of DEFAULT_SYSTEMS."""
    return DEFAULT_SYSTEMS.index(system) if system in DEFAULT_SYSTEMS else len(DEFAULT_SYSTEMS)


def merge(paths):
    """One report from the results.json files of several runs (a full run takes hours, so it
    may be done in parts, e.g. every system at 1 minute and adaptive alone at 5, or adaptive
    again after a change beside the static and Postfix rows of an earlier part). The rows
    keep their mix order, the parts' commands are listed, and the docs block is rewritten
    when every part had a mix × length that the others did not."""
    docs = []
    for spec in paths:
        # PATH#static+postfix takes only those systems' rows from PATH; PATH#-both-1m leaves
        # out a run (mix-length id), e.g. one measured again in another part.
        path, _, only = spec.partition("#")
        with open(path) as f:
            d = json.load(f)
        terms = [t for t in only.split("+") if t]
        keep = {t for t in terms if not t.startswith("-")}
        drop = {t[1:] for t in terms if t.startswith("-")}
        for run in d["runs"]:
            run["results"] = [r for r in run["results"] if not keep or r["system"] in keep]
        d["runs"] = [run for run in d["runs"] if run["results"] and run["id"] not in drop]
        if terms:
            d["settings"]["command"] += f" (rows: {' '.join(terms)})"
        docs.append(d)
    runs, seen = [], {}
    for d in docs:
        for run in d["runs"]:
            key = (run["mix"], run["minutes"])
            first = seen.get(key)
            if first is None:
                seen[key] = run
                runs.append(run)
                continue
            # The same mix × length from two parts: one row group, if each part ran other
            # systems on the same messages.
            had = {r["system"] for r in first["results"]}
            new = {r["system"] for r in run["results"]}
            if had & new or first["n"] != run["n"]:
                raise ValueError(f"{run['mix']} at {run['minutes']} min is in two parts "
                                 f"with the same system or another N")
            first["results"] = sorted(first["results"] + run["results"],
                                      key=lambda r: system_rank(r["system"]))
    mixes = [r["mix"] for r in docs[0]["runs"]]
    runs.sort(key=lambda r: (r["minutes"] or 0, mixes.index(r["mix"]) if r["mix"] in mixes
                             else len(mixes)))
    for i, run in enumerate(runs):
        run["order"] = i
    cfg = dict(docs[0]["settings"])
    cfg["command"] = "` and `".join(d["settings"]["command"] for d in docs)
    wall = sum(d.get("wall_s", 0.0) for d in docs)
    started = " and ".join(d["started"] for d in docs)
    return report(cfg, docs[0]["machine"], runs, started, wall)
