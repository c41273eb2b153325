"""Shared helpers for the cartero benchmarks: process accounting, the sink, cartero, Postfix.

Run with /usr/bin/python3 (standard library only). Everything listens on 127.0.0.1.
"""

import http.client
import os
import re
import shutil
import socket
import subprocess
import threading
import time

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout, proc=None):
    """Waits until something accepts on 127.0.0.1:port; fails if `proc` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ---------------------------------------------------------------------------------------------
# /proc accounting


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    # comm may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid, children=False):
    """utime+stime of a process (all its threads); with `children`, plus its reaped children."""
    try:
        f = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    # After comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def ppid_map():
    """pid -> parent pid for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out[int(name)] = int(_stat_fields(name)[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(root):
    """The live processes below `root` (not `root` itself)."""
    parents = ppid_map()
    kids, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parents.items():
            if pp == p:
                kids.append(c)
                frontier.append(c)
    return kids


def tree_cpu_seconds(root):
    """CPU of a process tree: root incl. reaped children, plus each live descendant.

    Postfix daemons that exit are reaped by master, so their time moves into master's cutime;
    nothing is counted twice and nothing is lost while master runs.
    """
    return cpu_seconds(root, children=True) + sum(cpu_seconds(p) for p in descendants(root))


def status_kb(pid, key):
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM ...), 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_cpu():
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


class MemSampler:
    """Samples the summed RSS and PSS of a set of processes until stopped; keeps the peaks."""

    def __init__(self, pids_fn, interval=0.25):
        self.pids_fn = pids_fn
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        pids = self.pids_fn()
        self.peak_rss_kb = max(self.peak_rss_kb, sum(status_kb(p, "VmRSS") for p in pids))
        self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(p) for p in pids))
        self.peak_procs = max(self.peak_procs, len(pids))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


# ---------------------------------------------------------------------------------------------
# smtp-sink


class Sink:
    """smtp-sink on 127.0.0.1:port with running counters (`-c`), parsed as they come.

    `extra` adds smtp-sink options, e.g. ["-Q", "CONNECT"] to answer 421 to every connection.
    """

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, port, extra=(), log=None):
        self.port = port
        cmd = [SMTP_SINK, "-c", *extra, f"127.0.0.1:{port}", "1000"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "postfix"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.count = 0
        self.log = log
        self._targets = []  # (n, event, [time])
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_port(port, 10, self.proc)

    def _read(self):
        tail = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            if self.log is not None:
                for line in chunk.split(b"\r"):
                    if line and b"mesg=" not in line:
                        self.log.write(line.decode(errors="replace") + "\n")
            buf = tail + chunk
            found = self.COUNTER.findall(buf)
            tail = buf[-32:]
            if not found:
                continue
            now = time.monotonic()
            with self._lock:
                self.count = max(self.count, int(found[-1]))
                for n, ev, at in self._targets:
                    if not ev.is_set() and self.count >= n:
                        at.append(now)
                        ev.set()

    def wait_for(self, n, timeout):
        """Monotonic time at which the sink had received `n` messages, or None on timeout."""
        ev, at = threading.Event(), []
        with self._lock:
            if self.count >= n:
                return time.monotonic()
            self._targets.append((n, ev, at))
        ev.wait(timeout)
        return at[0] if at else None

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# cartero


def cartero_config(path, data_dir, smtp_port, http_port, route, token, conns, msgs_per_conn):
    """Writes the cartero config used by the benchmarks (see bench/README.md for the reasons)."""
    text = f"""# Generated by bench/ -- see bench/README.md.
hostname = "bench.cartero.test"
data_dir = "{data_dir}"

[smtp]
listen = ["127.0.0.1:{smtp_port}"]

[http]
listen = "127.0.0.1:{http_port}"
tokens = ["{token}"]

[delivery.routes]
"*" = "{route}"

[events]
log_file = true

[shaping.default]
max_connections = {conns}
max_messages_per_connection = {msgs_per_conn}
"""
    with open(path, "w") as f:
        f.write(text)


class Cartero:
    """A `cartero serve -c CONFIG` process; stops it on `stop()`."""

    def __init__(self, binary, config, smtp_port, http_port, token, log_path):
        self.http_port = http_port
        self.token = token
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "-c", config], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_port(smtp_port, 60, self.proc)
        wait_port(http_port, 60, self.proc)
        self.pid = self.proc.pid

    def http(self, method, path, body=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def metrics(self):
        """Prometheus samples without labels as {name: value} (labelled ones summed by name)."""
        status, body = self.http("GET", "/metrics")
        out = {}
        if status != 200:
            return out
        for line in body.decode(errors="replace").splitlines():
            # Summary quantiles are not additive; keep counters, gauges, _sum and _count.
            if not line or line.startswith("#") or "quantile=" in line:
                continue
            name_part, _, value = line.rpartition(" ")
            name = name_part.split("{", 1)[0]
            try:
                out[name] = out.get(name, 0.0) + float(value)
            except ValueError:
                pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Postfix: a private instance, relaying everything to a smart host


MASTER_CF = """# Generated by bench/: only the services a relay needs, none chrooted.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """# Generated by bench/: a relay to [127.0.0.1]:{sink_port}, see bench/README.md.
compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.test
mydomain = bench-postfix.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
relay_domains =
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_destination_concurrency_limit = {conns}
default_process_limit = {procs}
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
"""


class Postfix:
    """A private Postfix instance under `base` (config in base/etc, queue on disk in base/spool)."""

    def __init__(self, base, port, sink_port, conns, procs):
        self.base = base
        self.etc = os.path.join(base, "etc")
        for d in ("etc", "spool", "data"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        shutil.chown(os.path.join(base, "data"), user="postfix")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(base=base, sink_port=sink_port, conns=conns, procs=procs))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=port))
        self._postfix("check")
        self._postfix("start")
        wait_port(port, 30)
        self.pid = self._master_pid()

    def _postfix(self, action):
        # Postfix reports errors on a terminal or to syslog only: `script` gives it a terminal.
        r = subprocess.run(
            ["script", "-qc", f"{POSTFIX} -c {self.etc} {action}", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0 or "fatal" in r.stdout:
            raise RuntimeError(f"postfix {action} failed: {r.stdout}{r.stderr}")

    def _master_pid(self):
        path = os.path.join(self.base, "spool", "pid", "master.pid")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise RuntimeError("postfix master.pid did not appear")

    def pids(self):
        return [self.pid, *descendants(self.pid)]

    def cpu(self):
        return tree_cpu_seconds(self.pid)

    def stop(self):
        try:
            self._postfix("stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and os.path.exists(f"/proc/{self.pid}"):
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Injection with smtp-source


def split_counts(n, parts):
    """n split into `parts` counts differing by at most one (the first ones get the extra)."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def inject_smtp_source(port, n, domains, size, lanes, timeout):
    """Sends n one-recipient messages of `size` payload bytes to `domains` domains.

    One smtp-source per domain (`-d`: one connection carrying that domain's messages), `lanes` of
    them at a time. Returns (failed invocations, first error text).
    """
    jobs = [
        (d, c) for d, c in enumerate(split_counts(n, domains)) if c > 0
    ]
    failures, first_error = 0, ""
    lock = threading.Lock()
    deadline = time.monotonic() + timeout
    it = iter(jobs)

    def lane():
        nonlocal failures, first_error
        while time.monotonic() < deadline:
            with lock:
                job = next(it, None)
            if job is None:
                return
            d, count = job
            cmd = [
                SMTP_SOURCE, "-d", "-m", str(count), "-l", str(size),
                "-f", "sender@source.bench.test", "-M", "injector.bench.test",
                "-t", f"user@d{d}.bench.test", f"127.0.0.1:{port}",
            ]
            left = max(1.0, deadline - time.monotonic())
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
                ok, err = r.returncode == 0, r.stderr.strip()
            except subprocess.TimeoutExpired:
                ok, err = False, "smtp-source timed out"
            if not ok:
                with lock:
                    failures += 1
                    first_error = first_error or err
    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures, first_error
