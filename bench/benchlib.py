"""Shared helpers for the cartero benchmarks: process accounting, the sink, cartero, Postfix,
injectors (smtp-source, HTTP API) and cartero-simulator.

Run with /usr/bin/python3 (standard library only). Everything listens on 127.0.0.1.
"""

import http.client
import json
import os
import re
import shutil
import signal
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
        self.pid = self.proc.pid
        try:
            wait_port(smtp_port, 60, self.proc)
            wait_port(http_port, 60, self.proc)
        except BaseException:
            self.stop()  # not left running when it never came up (or on Ctrl-C)
            raise

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

POSTFIX_BASE_CF = """# Generated by bench/, see bench/README.md.
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
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
"""

# The throughput benchmark's relay: everything to one smart host, `conns` connections.
MAIN_CF = POSTFIX_BASE_CF + """# A relay to [127.0.0.1]:{sink_port}.
relayhost = [127.0.0.1]:{sink_port}
smtp_destination_concurrency_limit = {conns}
default_process_limit = {procs}
"""


class Postfix:
    """A private Postfix instance under `base` (config in base/etc, queue on disk in base/spool)."""

    def __init__(self, base, port, sink_port=None, conns=None, procs=None, main_cf=None):
        """Without `main_cf`: the smart-host relay of MAIN_CF. With it: that text (formatted with
        `base`) is the whole main.cf, e.g. POSTFIX_BASE_CF plus transport settings."""
        self.base = base
        self.etc = os.path.join(base, "etc")
        for d in ("etc", "spool", "data"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        shutil.chown(os.path.join(base, "data"), user="postfix")
        if main_cf is None:
            text = MAIN_CF.format(base=base, sink_port=sink_port, conns=conns, procs=procs)
        else:
            text = main_cf.format(base=base)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(text)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=port))
        self._postfix("check")
        self._postfix("start")
        self.pid = None
        try:
            wait_port(port, 30)
            self.pid = self._master_pid()
        except BaseException:
            self.stop()  # `postfix start` daemonised a master: do not leave it running
            raise

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
        while (self.pid is not None and time.monotonic() < deadline
               and os.path.exists(f"/proc/{self.pid}")):
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
        (f"user@d{d}.bench.test", c) for d, c in enumerate(split_counts(n, domains)) if c > 0
    ]
    inj = SmtpSourceJobs(port, jobs, size, lanes, time.monotonic() + timeout).start()
    inj.join()
    return inj.failures, inj.first_error


class SmtpSourceJobs:
    """Runs `smtp-source -d -m COUNT -t RCPT` for each (RCPT, COUNT) of `jobs`, `lanes` at once.

    `extra` adds smtp-source options to every invocation, e.g. ["-N"] to prepend a sequence
    number to each recipient, so every message has its own address. Every invocation is bounded
    by `deadline` (monotonic); `cancel()` stops starting new ones and kills the running ones, so
    an interrupted benchmark leaves no smtp-source behind.
    """

    def __init__(self, port, jobs, size, lanes, deadline, extra=()):
        self.port, self.size, self.deadline, self.extra = port, size, deadline, list(extra)
        self.failures, self.first_error = 0, ""
        self.finished_at = None
        self._jobs = iter(jobs)
        self._lock = threading.Lock()
        self._live = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._lane, daemon=True) for _ in range(lanes)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _next(self):
        with self._lock:
            return None if self._stop.is_set() else next(self._jobs, None)

    def _lane(self):
        while time.monotonic() < self.deadline:
            job = self._next()
            if job is None:
                return
            rcpt, count = job
            cmd = [
                SMTP_SOURCE, "-d", *self.extra, "-m", str(count), "-l", str(self.size),
                "-f", "sender@source.bench.test", "-M", "injector.bench.test",
                "-t", rcpt, f"127.0.0.1:{self.port}",
            ]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            with self._lock:
                self._live.add(proc)
            try:
                _, err = proc.communicate(timeout=max(1.0, self.deadline - time.monotonic()))
                ok, err = proc.returncode == 0, err.strip()
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                ok, err = False, "smtp-source timed out"
            with self._lock:
                self._live.discard(proc)
                if not ok and not self._stop.is_set():
                    self.failures += 1
                    self.first_error = self.first_error or err

    def join(self, timeout=None):
        """Waits for every lane (at most `timeout` s); True when all are done."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self.finished_at is None:
            self.finished_at = time.monotonic()
        return done

    def cancel(self):
        self._stop.set()
        with self._lock:
            live = list(self._live)
        for proc in live:
            if proc.poll() is None:
                proc.kill()
        self.join(10)


class HttpInjector:
    """POSTs batches of recipients to cartero's `/api/v1/messages`, `threads` requests at once.

    `batches` are JSON-ready recipient lists; each request carries `raw` as content. Stops at
    the first refused request (kept in `errors`), at `deadline`, or on `cancel()`.
    """

    def __init__(self, mta, batches, raw, threads, deadline, sender="sender@source.bench.test"):
        self.mta, self.raw, self.deadline, self.sender = mta, raw, deadline, sender
        self.errors = []
        self.accepted = 0
        self._batches = iter(batches)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, daemon=True)
                         for _ in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _worker(self):
        while time.monotonic() < self.deadline:
            with self._lock:
                batch = None if self._stop.is_set() or self.errors else next(self._batches, None)
            if batch is None:
                return
            body = json.dumps({"mail_from": self.sender, "recipients": batch,
                               "content": {"raw": self.raw}})
            left = max(1.0, self.deadline - time.monotonic())
            try:
                status, reply = self.mta.http("POST", "/api/v1/messages", body, timeout=left)
            except OSError as e:
                status, reply = None, str(e).encode()
            with self._lock:
                if status == 200:
                    self.accepted += len(batch)
                else:
                    self.errors.append(f"HTTP {status}: {reply[:200]!r}")

    def join(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def cancel(self):
        self._stop.set()
        self.join(10)


def raw_message(size, subject="bench"):
    """A plain RFC 5322 message of about `size` bytes."""
    head = ("From: Bench <sender@source.bench.test>\r\nTo: undisclosed-recipients:;\r\n"
            f"Subject: {subject}\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


# ---------------------------------------------------------------------------------------------
# cartero-simulator


class Simulator:
    """`cartero-simulator --stats-json FILE SCENARIO`: the providers and their counters.

    The counters are read from the JSON file the simulator rewrites every `every` (atomically),
    never from its human-readable output.
    """

    def __init__(self, binary, scenario, stats_path, log_path, every="100ms"):
        self.stats_path = stats_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--stats-json", stats_path, "--stats-every", every, scenario],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.last = None
        try:
            self._wait_first_stats(log_path)
        except BaseException:
            self.stop()
            raise
        # provider name -> (ip, port)
        self.addrs = {
            name: (p["addr"].rsplit(":", 1)[0], int(p["addr"].rsplit(":", 1)[1]))
            for name, p in self.last["providers"].items()
        }

    def _wait_first_stats(self, log_path):
        deadline = time.monotonic() + 30
        while self.read() is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cartero-simulator exited with {self.proc.returncode}; "
                                   f"see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError("cartero-simulator wrote no stats file within 30 s")
            time.sleep(0.05)

    def read(self):
        """The latest stats document ({unix_ms, final, providers, total}), or None."""
        try:
            with open(self.stats_path) as f:
                self.last = json.load(f)
        except (OSError, ValueError):
            pass
        return self.last

    def stop(self):
        """SIGINT (the simulator writes its final counters), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.read()


# ---------------------------------------------------------------------------------------------
# docs


def replace_block(path, begin, end, block, header):
    """Rewrites the text between the `begin` and `end` markers of `path`; when they are missing,
    appends `header` and the markers at the end. The rest of the file is left as it was."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
    new = f"{begin}\n{block.rstrip()}\n{end}"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        text = pre + new + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + header.rstrip("\n") + "\n\n" + new + "\n"
    with open(path, "w") as f:
        f.write(text)
