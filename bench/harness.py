#!/usr/bin/env python3
"""The benchmark harness behind `bench/run` (Python 3 standard library only).

It starts the demo stack (gateway, Huawei Cloud simulator and demo identity provider in one
process) twice from a release binary, once on embedded SQLite and once on a throwaway
PostgreSQL cluster (fsync on); the simulator alone (`starrocks-gateway simulator`) for the
direct arms, and nginx in front of it as the cheapest possible hop. Every arm is driven with
`wrk` over loopback:

  healthz        GET /healthz                          the floor: no auth, no storage
  rejected       GET /v1/starrocks, bad signature      authentication's refusal path
  dryrun-sqlite  POST /v1/starrocks/dry-run            auth, policy, decision log (SQLite)
  create-sqlite  POST /v1/starrocks (team bench)       the whole create pipeline (SQLite)
  dryrun-pg      the same dry-run                      on PostgreSQL
  create-pg      the same create                       on PostgreSQL
  direct         POST {sim}/v3/…/starrocks             the simulator alone, IAM token in hand
  nginx          the same, through nginx proxy_pass    the cheapest possible hop
  poll           40 pollers: GET /v1/starrocks and /v1/starrocks/{id}, upstream calls counted

The create and dry-run arms spread their requests over 500 copies of the policy's team `bench`
(one token each): the gateway sums a team's usage from its reservations on every create and
dry-run, so a single team taking thousands of creates would slow each request down a little
more than the last, and the rounds would measure the ledger's growth. The pollers have a
gateway of their own for the same reason: their list and get read tables the creates grow.

Each arm runs at 32 connections and at one connection (the pollers at 40). Every arm has one
warm-up run, then the arms are interleaved in rounds (A B C … then … C B A, and so on), and
medians over the rounds are reported. Around every run the harness reads the servers' CPU
time (utime + stime from /proc/PID/stat) to give CPU per request, and the simulator's and the
gateway's counters to give upstream calls. Results go to bench/results/latest.json, a
Markdown table to stdout, and, with --update-benchmarks, to the marked section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The simulator's IAM account (crates/huawei-sim, SimulatorConfig::default).
SIM_DOMAIN = "demo-account"
SIM_USER = "demo-gateway"
SIM_PASSWORD = "Demo-Passw0rd!"
SIM_PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
BENCH_ROOT_PASSWORD = "Bench-Passw0rd!9"
# A TaurusDB instance the standalone simulator knows (SimulatorConfig::default, the example
# policy's analytics-prod); the direct and nginx arms create there.
DIRECT_TARGET_ID = "40dc4c5729f14aad893e2dcd5baf6a15in07"

BENCH_TEAM = "bench"
BENCH_TARGET = "bench-prod"
# The demo's rate limits, turned off (`SRGW_LIMITS__*`, see docs in src/config.rs).
NO_RATE_LIMITS = {
    "SRGW_LIMITS__CREATES_PER_MINUTE": "0",
    "SRGW_LIMITS__REQUESTS_PER_SECOND": "0",
    "SRGW_LIMITS__CLOUD_CALLS_PER_SECOND": "0",
}
# --profile: record each run with perf (set in main).
PROFILE = False
CREATE_BODY = {"name": "bench-cube", "target": BENCH_TARGET, "size": "small"}
# The pollers' instances: alice's team (analytics) on its two targets.
POLL_INSTANCES = [("poll-a1", "analytics-prod"), ("poll-a2", "analytics-prod"), ("poll-b1", "analytics-dev")]

# CPU (in cores) other user-space processes may use during a run before the run is repeated,
# and flagged when the retry budget is spent.
FOREIGN_CPU_LIMIT = 0.2
# Processes of ours that are not this harness's descendants: the PostgreSQL cluster (pg_ctl
# detaches it), added when it starts.
OUR_TREES: set[int] = set()

BEGIN_MARK = "<!-- bench:begin -->"
END_MARK = "<!-- bench:end -->"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, headers=None, timeout: float = 10.0):
    """One request; returns (status, headers, body bytes) and never raises on an HTTP status."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def http_json(method: str, url: str, body=None, headers=None, expect=(200,)):
    status, _, raw = http(method, url, body, headers)
    if status not in expect:
        raise RuntimeError(f"{method} {url} answered {status}: {raw[:500]!r}")
    return json.loads(raw) if raw else None


# --- /proc ---------------------------------------------------------------------------------


def proc_stat(pid: int):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return ppid, own, children


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] == pid:
                found.append(int(entry))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a server and its worker processes (nginx, PostgreSQL): the parent's own
    time, the time of its reaped children, and the time of the living ones."""
    stat = proc_stat(pid)
    if stat is None:
        return 0.0
    total = stat[1] + stat[2]
    for child in children_of(pid):
        child_stat = proc_stat(child)
        if child_stat:
            total += child_stat[1]
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


PF_KTHREAD = 0x00200000


def process_table() -> dict[int, tuple[int, int, float]]:
    """Every user-space process: pid -> (ppid, start time, CPU seconds of its own and of its
    reaped children). Kernel threads are left out."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[6]) & PF_KTHREAD:
            continue
        cpu = sum(int(x) for x in fields[11:15]) / CLK_TCK
        table[int(entry)] = (int(fields[1]), int(fields[19]), cpu)
    return table


def foreign_cpu(before: dict, after: dict, ours: set[int]) -> float:
    """CPU seconds other user-space processes used between two process tables: everything but
    this harness, its descendants (servers, wrk) and the processes in `ours` (the PostgreSQL
    cluster). A process that started in between counts whole; its reaped children count through
    their parent (a build's compiler runs through cargo)."""
    mine = {os.getpid()} | set(ours)
    table = {**before, **after}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in table.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    total = 0.0
    for pid, (_, start, cpu) in after.items():
        if pid in mine:
            continue
        earlier = before.get(pid)
        total += cpu - earlier[2] if earlier and earlier[1] == start else cpu
    return max(0.0, total)


def children_cpu() -> float:
    """CPU seconds of this harness's reaped children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> float:
    stat = proc_stat(pid)
    return stat[1] if stat else 0.0


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# --- processes -----------------------------------------------------------------------------


def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stops a child gracefully with `sig`, killing it after 15 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Demo:
    """One `starrocks-gateway demo` process: gateway, simulator and identity provider."""

    def __init__(self, name: str, binary: str, workdir: Path, policy: Path, storage_url: str | None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        command = [binary, "demo", "--listen", f"127.0.0.1:{self.port}", "--policy", str(policy)]
        if storage_url:
            command += ["--storage-url", storage_url]
        # The demo's own SQLite file goes to TMPDIR: the work directory, next to the fsync probe.
        # The rate limits are off: the arms measure the pipeline, not the limiter's refusals.
        env = dict(os.environ, RUST_LOG="warn", TMPDIR=str(workdir), **NO_RATE_LIMITS)
        self.log_file = open(self.log_path, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            command, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        self.pid = self.proc.pid
        self.ready_secs = self._wait_ready(started)
        self.simulator_url, self.idp_url = self._banner()

    def _wait_ready(self, started: float) -> float:
        deadline = started + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                status, _, _ = http("GET", self.url + "/readyz", timeout=2)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} was not ready within 60 s:\n{self.log_path.read_text()[-3000:]}")

    def _banner(self) -> tuple[str, str]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            sim = re.search(r"^  cloud sim\s+(\S+)", text, re.M)
            idp = re.search(r"^  identity\s+(\S+)", text, re.M)
            if sim and idp:
                return sim.group(1), idp.group(1)
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} printed no banner:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        terminate(self.proc)
        self.log_file.close()

    def metrics(self) -> dict:
        """Counters of interest from the gateway's Prometheus text."""
        _, _, raw = http("GET", self.url + "/metrics")
        calls: dict[str, float] = {}
        iam = 0.0
        for line in raw.decode().splitlines():
            if line.startswith("starrocks_gateway_cloud_calls_total{"):
                labels, value = line.rsplit(" ", 1)
                operation = re.search(r'operation="([^"]*)"', labels)
                key = operation.group(1) if operation else labels
                calls[key] = calls.get(key, 0.0) + float(value)
            elif line.startswith("starrocks_gateway_iam_token_fetches_total"):
                iam += float(line.rsplit(" ", 1)[1])
        return {"cloud_calls": calls, "iam_token_fetches": iam}

    def sim_stats(self) -> dict:
        return http_json("GET", self.simulator_url + "/_sim/stats")


class StandaloneSimulator:
    """`starrocks-gateway simulator`: the direct and nginx arms' upstream, a process of its own so
    that their creates neither grow the demo process's memory nor share its CPU."""

    def __init__(self, binary: str, workdir: Path):
        self.port = free_port()
        self.simulator_url = f"http://127.0.0.1:{self.port}"
        self.log_file = open(workdir / "simulator.log", "w")
        self.proc = subprocess.Popen(
            [binary, "simulator", "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, RUST_LOG="warn"),
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start:\n{(workdir / 'simulator.log').read_text()[-3000:]}")
            try:
                if http("GET", self.simulator_url + "/_sim/stats", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)

    def sim_stats(self) -> dict:
        return http_json("GET", self.simulator_url + "/_sim/stats")

    def stop(self) -> None:
        terminate(self.proc)
        self.log_file.close()


def find_postgres_bin() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p)],
    )
    for candidate in reversed(candidates):
        if os.access(Path(candidate) / "postgres", os.X_OK) and os.access(Path(candidate) / "pg_ctl", os.X_OK):
            return Path(candidate)
    return None


class Postgres:
    """A throwaway cluster in a temporary directory, as scripts/test starts one, but durable:
    fsync on, so a commit costs what it costs in production."""

    def __init__(self, bindir: Path, parent: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            # initdb refuses to run as root: the cluster belongs to the postgres user.
            if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            os.chmod(parent, 0o755)
            shutil.chown(self.dir, "postgres")
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200"
        )
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-o", options, "start"]
        )
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        OUR_TREES.add(self.pid)
        version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
        self.version = version.stdout.strip()

    def _run(self, command: list[str]) -> None:
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--"] + command
        # From the cluster's directory: postgres may not enter root's private checkout.
        result = subprocess.run(command, cwd=self.dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        try:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        except RuntimeError as error:
            log(f"stopping PostgreSQL: {error}")


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


class Nginx:
    """nginx in front of the simulator: keep-alive upstream, no access log, one child process."""

    def __init__(self, binary: str, parent: Path, upstream: str):
        self.dir = parent / "nginx"
        self.dir.mkdir()
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        host = urllib.parse.urlsplit(upstream).netloc
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"""{user}daemon off;
master_process on;
worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/client_body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    client_body_buffer_size 64k;
    large_client_header_buffers 4 16k;
    upstream simulator {{
        server {host};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://simulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
        )
        self.log_file = open(self.dir / "stderr.log", "w")
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{(self.dir / 'error.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.02)
        version = subprocess.run([binary, "-v"], capture_output=True, text=True)
        self.version = (version.stderr or version.stdout).strip()

    def stop(self) -> None:
        # nginx stops gracefully on SIGQUIT (SIGTERM is its fast shutdown).
        terminate(self.proc, signal.SIGQUIT)
        self.log_file.close()


# --- wrk -----------------------------------------------------------------------------------

# Precise figures from wrk's own histogram (microseconds), printed once at the end.
LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def lua_string(value: str) -> str:
    level = "="
    while f"]{level}]" in value:
        level += "="
    return f"[{level}[{value}]{level}]"


def lua_table(headers: dict) -> str:
    return "{" + ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()) + "}"


def lua_script(path: Path, method: str = "GET", headers=None, body: str | None = None, variants=None) -> Path:
    """A wrk script: one request, or `variants` ((path, headers) pairs, each with all its
    headers) that every thread's connections take in turn, formatted once at start."""
    lines = [f"wrk.method = {lua_string(method)}"]
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}")
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    if variants:
        lines.append("local variants = {")
        lines += [f"  {{ {lua_string(p)}, {lua_table(h)} }}," for p, h in variants]
        lines.append("}")
        lines.append(
            """local requests, i = {}, 0
init = function(args)
  for k, v in ipairs(variants) do requests[k] = wrk.format(nil, v[1], v[2], nil) end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end"""
        )
    path.write_text("\n".join(lines) + "\n" + LUA_DONE)
    return path


def run_wrk(url: str, script: Path, connections: int, threads: int, seconds: int, out: Path | None = None) -> dict:
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if out is not None:
        out.write_text(" ".join(command) + "\n" + result.stdout + result.stderr)
    match = re.search(r"^BENCH_JSON (.*)$", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(match.group(1))


# --- arms ----------------------------------------------------------------------------------


@dataclass
class Arm:
    key: str
    label: str
    url: str
    script: Path
    connections: int
    threads: int
    # The process under test: a demo process, or the standalone simulator.
    server: Demo | StandaloneSimulator
    expect_2xx: bool = True
    # Extra servers whose CPU counts towards this arm: name -> pid (process tree).
    trees: dict[str, int] = field(default_factory=dict)
    poll: dict | None = None
    rounds: list[dict] = field(default_factory=list)
    # Runs repeated because other processes competed for the cores.
    discarded: list[dict] = field(default_factory=list)
    warmup: dict | None = None


def start_profiler(pid: int, output: Path) -> subprocess.Popen:
    """`perf record` with DWARF call graphs on the process under test, for --profile."""
    return subprocess.Popen(
        ["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(pid), "-o", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )


def measure(arm: Arm, seconds: int, workdir: Path, tag: str) -> dict:
    gateway = arm.server if isinstance(arm.server, Demo) else None
    empty = {"cloud_calls": {}, "iam_token_fetches": 0.0}
    metrics_before = gateway.metrics() if gateway else empty
    sim_before = arm.server.sim_stats()
    cpu_before = proc_cpu(arm.server.pid)
    trees_before = {name: tree_cpu(pid) for name, pid in arm.trees.items()}
    busy_before, wrk_before, own_before = machine_busy(), children_cpu(), time.process_time()
    table_before = process_table()
    profiler = start_profiler(arm.server.pid, workdir / f"perf-{arm.key}-{tag}.data") if PROFILE else None
    started = time.monotonic()
    out = run_wrk(arm.url, arm.script, arm.connections, arm.threads, seconds, workdir / f"wrk-{arm.key}-{tag}.txt")
    wall = time.monotonic() - started
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=120)
    busy, wrk_cpu, own = machine_busy() - busy_before, children_cpu() - wrk_before, time.process_time() - own_before
    table_after = process_table()
    cpu = proc_cpu(arm.server.pid) - cpu_before
    trees = {name: tree_cpu(pid) - trees_before[name] for name, pid in arm.trees.items()}
    # Other processes competing for the cores (a build, another benchmark) ...
    foreign = foreign_cpu(table_before, table_after, OUR_TREES) / wall
    # ... and what is left: the kernel's own threads (journal, writeback, softirqs), mostly.
    kernel = max(0.0, busy - cpu - sum(trees.values()) - wrk_cpu - own - foreign * wall) / wall
    metrics_after = gateway.metrics() if gateway else empty
    sim_after = arm.server.sim_stats()

    requests = out["requests"]
    socket_errors = out["connect"] + out["read"] + out["write"] + out["timeout"]
    non_2xx = out["status"]
    figures = {
        "requests": requests,
        "rps": requests / (out["duration_us"] / 1e6),
        "p50_ms": out["p50_us"] / 1000,
        "p90_ms": out["p90_us"] / 1000,
        "p99_ms": out["p99_us"] / 1000,
        "p999_ms": out["p999_us"] / 1000,
        "mean_ms": out["mean_us"] / 1000,
        "max_ms": out["max_us"] / 1000,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "server_cpu_us_per_req": cpu / requests * 1e6 if requests else None,
        "server_cpu_cores": cpu / wall,
        "server": "demo" if gateway else "simulator",
        "wrk_cpu_cores": wrk_cpu / wall,
        "machine_busy_cores": busy / wall,
        "foreign_cpu_cores": foreign,
        "kernel_threads_cpu_cores": kernel,
    }
    for name, value in trees.items():
        figures[f"{name}_cpu_us_per_req"] = value / requests * 1e6 if requests else None
    calls = {
        op: metrics_after["cloud_calls"].get(op, 0) - metrics_before["cloud_calls"].get(op, 0)
        for op in sorted(set(metrics_after["cloud_calls"]) | set(metrics_before["cloud_calls"]))
    }
    figures["upstream_calls"] = {op: n for op, n in calls.items() if n}
    figures["iam_token_fetches"] = metrics_after["iam_token_fetches"] - metrics_before["iam_token_fetches"]
    figures["sim"] = {
        k: sim_after[k] - sim_before[k]
        for k in ("creates_received", "lists_received", "gets_received", "tokens_issued")
        if sim_after[k] - sim_before[k]
    }
    if arm.poll is not None:
        figures.update(poll_figures(arm.poll, calls, requests, wall))
    problems = []
    if socket_errors:
        problems.append(f"{socket_errors} socket errors")
    if arm.expect_2xx and non_2xx:
        problems.append(f"{non_2xx} non-2xx answers")
    if not arm.expect_2xx and non_2xx != requests:
        problems.append(f"{requests - non_2xx} answers were 2xx where refusals were expected")
    if foreign > FOREIGN_CPU_LIMIT:
        problems.append(f"other processes used {foreign:.2f} cores during the run")
    figures["problems"] = problems
    return figures


def poll_figures(poll: dict, calls: dict, reads: int, wall: float) -> dict:
    """Upstream calls of the pollers: per second, per key (target for lists, instance for gets
    and job reads) per second, and per 1,000 reads."""
    keys = {"list": poll["targets"], "get": poll["instances"], "job": poll["instances"]}
    per_key = {op: calls.get(op, 0) / n / wall for op, n in keys.items()}
    total = sum(calls.get(op, 0) for op in keys)
    # A 1 s read cache refreshes at most once per started second per key: the window's edge
    # allows one more than its length.
    allowed = {op: n * (int(wall) + 1) for op, n in keys.items()}
    return {
        "poll_window_s": wall,
        "poll_allowed_per_key_per_s": (int(wall) + 1) / wall,
        "upstream_per_s": total / wall,
        "upstream_per_key_per_s": per_key,
        "upstream_per_1000_reads": total / reads * 1000 if reads else None,
        "poll_within_one_per_key_per_s": all(calls.get(op, 0) <= allowed[op] for op in keys),
    }


def median_figures(rounds: list[dict]) -> dict:
    medians = {}
    for key, value in rounds[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
        if values:
            medians[key] = statistics.median(values)
    per_key = [r["upstream_per_key_per_s"] for r in rounds if "upstream_per_key_per_s" in r]
    if per_key:
        medians["upstream_per_key_per_s"] = {op: statistics.median(p[op] for p in per_key) for op in per_key[0]}
    calls = [r["upstream_calls"] for r in rounds]
    ops = sorted({op for c in calls for op in c})
    medians["upstream_calls"] = {op: statistics.median(c.get(op, 0) for c in calls) for op in ops}
    return medians


# --- other figures -------------------------------------------------------------------------


def wait_idle(limit: int) -> bool:
    """Waits up to `limit` seconds for a quiet 2 s window: other processes under
    FOREIGN_CPU_LIMIT cores."""
    deadline = time.monotonic() + limit
    logged = False
    while True:
        before = process_table()
        time.sleep(2)
        busy = foreign_cpu(before, process_table(), OUR_TREES) / 2
        if busy < FOREIGN_CPU_LIMIT:
            return True
        if time.monotonic() > deadline:
            return False
        if not logged:
            log(f"the machine is busy ({busy:.2f} cores); waiting up to {limit} s for it to be idle")
            logged = True


def fsync_cost(directory: Path, iterations: int = 200) -> dict:
    """A durable commit's floor on this disk: append 4 KiB and fsync, timed."""
    path = directory / "fsync-probe"
    block = os.urandom(4096)
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for i in range(iterations + 20):
            started = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            if i >= 20:
                samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    samples.sort()
    return {
        "iterations": iterations,
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": samples[int(len(samples) * 0.9)] * 1000,
        "filesystem": filesystem_of(directory),
    }


def filesystem_of(directory: Path) -> str:
    result = subprocess.run(["df", "--output=fstype", str(directory)], capture_output=True, text=True)
    lines = result.stdout.split()
    return lines[-1] if result.returncode == 0 and len(lines) > 1 else "unknown"


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = None
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": os.cpu_count(),
        "model": model,
        "kernel": platform.release(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1) if memory_kb else None,
    }


def git(*args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def tool_version(command: list[str]) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- setup ---------------------------------------------------------------------------------


def token_for(demo: Demo, sub: str, team: str) -> str:
    query = urllib.parse.urlencode({"sub": sub, "team": team, "ttl_secs": 3600})
    return http_json("GET", f"{demo.idp_url}/token?{query}")["access_token"]


def forged(token: str) -> str:
    """The same token with one signature character changed: well-formed, known key, bad signature."""
    header, claims, signature = token.split(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, claims, signature[:middle] + swapped + signature[middle + 1 :]])


def iam_token(simulator_url: str) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": SIM_USER, "password": SIM_PASSWORD, "domain": {"name": SIM_DOMAIN}}
                },
            },
            "scope": {"project": {"id": SIM_PROJECT}},
        }
    }
    status, headers, raw = http("POST", simulator_url + "/v3/auth/tokens", body)
    if status != 201 or not headers.get("X-Subject-Token"):
        raise RuntimeError(f"the simulator's IAM answered {status}: {raw[:300]!r}")
    return headers["X-Subject-Token"]


def direct_request(demo: Demo, token: str) -> tuple[str, str]:
    """The path and body the gateway would send upstream, from one dry-run's answer."""
    answer = http_json(
        "POST",
        demo.url + "/v1/starrocks/dry-run",
        CREATE_BODY,
        {"Authorization": f"Bearer {token}"},
    )
    upstream = answer["upstream"]
    body = dict(upstream["body"])
    body["db_root_pwd"] = BENCH_ROOT_PASSWORD
    return upstream["path"], json.dumps(body, separators=(",", ":"))


def check_once(label: str, method: str, url: str, body: str | None, headers: dict, expect: int) -> None:
    status, _, raw = http(method, url, body.encode() if body is not None else None, headers)
    if status != expect:
        raise RuntimeError(f"{label}: {method} {url} answered {status}, expected {expect}: {raw[:500]!r}")


def create_poll_instances(demo: Demo, token: str) -> list[str]:
    ids = []
    for name, target in POLL_INSTANCES:
        answer = http_json(
            "POST",
            demo.url + "/v1/starrocks",
            {"name": name, "target": target, "size": "small"},
            {"Authorization": f"Bearer {token}"},
            expect=(200, 201, 202),
        )
        instance_id = answer.get("id") or answer.get("instance_id") or (answer.get("instance") or {}).get("id")
        if not instance_id:
            raise RuntimeError(f"no instance id in the create answer: {answer}")
        ids.append(instance_id)
    return ids


def bench_policy(binary: str, workdir: Path, teams: int) -> tuple[Path, list[str]]:
    """bench/policy.toml plus `teams` copies of its team `bench` (bench-0001, …), all without
    quota and on the same target. The create and dry-run arms spread their requests over them:
    a team's usage is summed from its reservations on every create and dry-run, so one team
    taking every create would make each request slower than the one before."""
    base = (ROOT / "bench" / "policy.toml").read_text()
    target = re.search(r'^\[teams\.bench\.targets\]\s*\n' + BENCH_TARGET + r'\s*=\s*"([^"]+)"', base, re.M)
    if not target:
        raise RuntimeError(f"bench/policy.toml has no [teams.bench.targets] {BENCH_TARGET}")
    names = [f"{BENCH_TEAM}-{n:04d}" for n in range(1, teams + 1)]
    blocks = [
        f'\n[teams.{name}]\nenterprise_project_id = "0"\nallowed_sizes = ["small"]\n'
        f'[teams.{name}.targets]\n{BENCH_TARGET} = "{target.group(1)}"\n'
        for name in names
    ]
    path = workdir / "policy.toml"
    path.write_text(base + "\n# Generated by bench/harness.py: copies of team bench.\n" + "".join(blocks))
    check = subprocess.run([binary, "policy", "check", str(path)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"the generated policy does not check:\n{check.stdout}{check.stderr}")
    return path, names or [BENCH_TEAM]


def measure_start_to_ready(binary: str, workdir: Path, policy: Path, storage_url: str | None, times: int) -> list[float]:
    samples = []
    for i in range(times):
        demo = Demo(f"ready-{'pg' if storage_url else 'sqlite'}-{i}", binary, workdir, policy, storage_url)
        samples.append(demo.ready_secs)
        demo.stop()
    return samples


# --- report --------------------------------------------------------------------------------


def ms(value) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def number(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def compute_targets(results: dict, fsync: dict) -> list[dict]:
    arms = results["arms"]

    def med(key: str, figure: str):
        arm = arms.get(key)
        return arm["median"].get(figure) if arm else None

    targets = []

    def ratio(name: str, num, den, limit: float, at_least: bool, unit: str = "ratio"):
        if num is None or den is None or den == 0:
            targets.append({"target": name, "measured": None, "limit": limit, "pass": None, "unit": unit,
                            "comparison": "≥" if at_least else "≤"})
            return
        value = num / den
        passed = value >= limit if at_least else value <= limit
        targets.append(
            {"target": name, "measured": value, "limit": limit, "pass": passed, "unit": unit,
             "comparison": "≥" if at_least else "≤"}
        )

    allowance = 2 * fsync["median_ms"]
    for store in ("sqlite", "pg"):
        title = "SQLite" if store == "sqlite" else "PostgreSQL"
        ratio(f"dry-run / healthz throughput ({title}, 32 conns)",
              med(f"dryrun-{store}-c32", "rps"), med("healthz-c32", "rps"), 0.3, True)
        ratio(f"create / direct create throughput ({title}, 32 conns)",
              med(f"create-{store}-c32", "rps"), med("direct-c32", "rps"), 0.3, True)
        ratio(f"create p99 / direct p99 ({title}, 32 conns)",
              med(f"create-{store}-c32", "p99_ms"), med("direct-c32", "p99_ms"), 10.0, False)
        create_p50, direct_p50 = med(f"create-{store}-c1", "p50_ms"), med("direct-c1", "p50_ms")
        name = f"create p50 − direct p50 at 1 conn ({title}) ≤ 2 fsyncs"
        if create_p50 is None or direct_p50 is None:
            targets.append({"target": name, "measured": None, "limit": allowance, "pass": None, "unit": "ms",
                            "comparison": "≤"})
        else:
            gap = create_p50 - direct_p50
            targets.append({"target": name, "measured": gap, "limit": allowance, "pass": gap <= allowance,
                            "unit": "ms", "comparison": "≤"})
    poll = arms.get("poll-c40")
    if poll:
        per_key = poll["median"].get("upstream_per_key_per_s", {})
        within = all(r.get("poll_within_one_per_key_per_s") for r in poll["rounds"])
        worst = max(per_key.values()) if per_key else None
        # One call per key per second, plus the one a cache refresh may add at the window's edge.
        allowed = poll["median"].get("poll_allowed_per_key_per_s", 1.0)
        targets.append({"target": "pollers: upstream calls per target or instance per second "
                                  "(1/s, +1 call at the window's edge)", "measured": worst,
                        "limit": allowed, "pass": within, "unit": "calls/s", "comparison": "≤"})
    else:
        targets.append({"target": "pollers: upstream calls per target or instance per second", "measured": None,
                        "limit": 1.0, "pass": None, "unit": "calls/s", "comparison": "≤"})
    return targets


def markdown(results: dict) -> str:
    lines = []
    m = results["machine"]
    s = results["settings"]
    lines.append(f"- machine: {m['cores']} cores, {m['model']}, Linux {m['kernel']}, {m['memory_gib']} GiB")
    lines.append(f"- date: {results['date']}; commit `{results['git_commit']}`; binary `{results['binary']['path']}`")
    lines.append(f"- command: `{results['command']}`")
    lines.append(
        f"- {s['rounds']} interleaved rounds of {s['seconds']:g} s per arm after a {s['warmup_seconds']:g} s warm-up; "
        f"medians; wrk {s['connections']} connections (2 threads) or 1; pollers {s['pollers']}"
    )
    lines.append("")
    lines.append("| arm | conns | req/s | req/s by round | p50 | p99 | CPU µs/req | non-2xx |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for arm in results["arms"].values():
        med = arm["median"]
        cpu = number(med.get("server_cpu_us_per_req"), 0)
        extra = [f"{name} {number(med.get(f'{name}_cpu_us_per_req'), 0)}" for name in arm["cpu_trees"]]
        if extra:
            cpu += " (+ " + ", ".join(extra) + ")"
        non2xx = number(med.get("non_2xx"), 0) + (" (expected)" if not arm["expect_2xx"] else "")
        lines.append(
            f"| {arm['label']} | {arm['connections']} | {number(med.get('rps'))} | "
            f"{' · '.join(number(r['rps']) for r in arm['rounds'])} | {ms(med.get('p50_ms'))} | "
            f"{ms(med.get('p99_ms'))} | {cpu} | {non2xx} |"
        )
    lines.append("")
    lines.append("CPU µs/req: utime + stime of the process under test per request: the demo process "
                 "(gateway, its simulator and the demo IdP) for the gateway arms, so the create arms include "
                 "the simulator's share; the standalone simulator for the direct and nginx arms; nginx's and "
                 "PostgreSQL's own processes in parentheses.")
    lines.append("")
    lines.append("| target | measured | limit | result |")
    lines.append("|---|---|---|---|")
    for t in results["targets"]:
        unit = t["unit"]
        fmt = (lambda v: ms(v)) if unit == "ms" else (lambda v: number(v, 2) + ("" if unit == "ratio" else f" {unit}"))
        measured = fmt(t["measured"]) if t["measured"] is not None else "not measured"
        limit = f"{t.get('comparison', '')} {fmt(t['limit'])}".strip()
        result = {True: "pass", False: "**fail**", None: "–"}[t["pass"]]
        lines.append(f"| {t['target']} | {measured} | {limit} | {result} |")
    lines.append("")
    other = results["other"]
    ready = other.get("start_to_ready_s", {})
    for store, figures in ready.items():
        lines.append(f"- start to ready ({store}): median {figures['median'] * 1000:.0f} ms "
                     f"(samples {', '.join(f'{x * 1000:.0f}' for x in figures['samples'])} ms)")
    for store, figures in other.get("memory_kb", {}).items():
        lines.append(f"- RSS ({store} demo process): idle {figures['idle_rss_kb'] / 1024:.1f} MiB, "
                     f"peak {figures['peak_hwm_kb'] / 1024:.1f} MiB, after the run {figures['end_rss_kb'] / 1024:.1f} MiB")
    fs = other["fsync"]
    lines.append(f"- fsync (4 KiB append + fsync, {fs['filesystem']}): median {fs['median_ms']:.2f} ms, "
                 f"p90 {fs['p90_ms']:.2f} ms; allowance for two durable commits {2 * fs['median_ms']:.2f} ms")
    for store, fetches in other.get("iam_token_fetches", {}).items():
        lines.append(f"- IAM token fetches over the whole run ({store} gateway): {fetches:.0f}")
    for store, creates in other.get("creates_at_end", {}).items():
        lines.append(f"- creates the {store} gateway's simulator received over the run: {creates:,}")
    poll = results["arms"].get("poll-c40")
    if poll:
        med = poll["median"]
        per_key = med.get("upstream_per_key_per_s", {})
        lines.append(
            f"- pollers: {number(med.get('rps'))} reads/s, {number(med.get('upstream_per_s'), 2)} upstream calls/s, "
            f"{number(med.get('upstream_per_1000_reads'), 3)} per 1,000 reads; per key per second: "
            + ", ".join(f"{op} {v:.2f}" for op, v in per_key.items())
            + f" ({poll['poll']['targets']} targets, {poll['poll']['instances']} instances)"
        )
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def update_benchmarks(path: Path, table: str) -> None:
    text = path.read_text()
    if BEGIN_MARK not in text or END_MARK not in text:
        raise RuntimeError(f"{path} has no {BEGIN_MARK} … {END_MARK} section")
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    path.write_text(f"{head}{BEGIN_MARK}\n{table}{END_MARK}{tail}")


# --- main ----------------------------------------------------------------------------------


ARM_ORDER = ["healthz", "rejected", "dryrun-sqlite", "create-sqlite", "dryrun-pg", "create-pg", "direct", "nginx"]


def main() -> int:
    # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C, so the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="release binary of starrocks-gateway")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECS", 5)),
                        help="length of each measured run (whole seconds, as wrk takes them)")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 2)),
                        help="length of each arm's warm-up run; 0 for none")
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNS", 32)))
    parser.add_argument("--pollers", type=int, default=int(os.environ.get("BENCH_POLLERS", 40)))
    parser.add_argument("--retry-budget", type=int, default=int(os.environ.get("BENCH_RETRY_BUDGET", 90)),
                        help="seconds of runs that may be repeated because other processes were busy")
    parser.add_argument("--wait-idle", type=int, default=int(os.environ.get("BENCH_WAIT_IDLE", 60)),
                        help="seconds to wait at start for the machine to be idle")
    parser.add_argument("--teams", type=int, default=int(os.environ.get("BENCH_TEAMS", 500)),
                        help="bench teams the create and dry-run arms spread their requests over")
    parser.add_argument("--ready-samples", type=int, default=3, help="extra demo starts timed to /readyz")
    parser.add_argument("--only", help="comma-separated arm names (" + ", ".join(ARM_ORDER + ["poll"]) + ")")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--update-benchmarks", nargs="?", type=Path, const=ROOT / "BENCHMARKS.md", metavar="FILE",
                        help="write the table between the bench markers of FILE (BENCHMARKS.md)")
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND"),
                        help="the command line to record (bench/run passes its own)")
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="record every run with `perf record` into the kept workdir (perturbs the figures)")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    if PROFILE:
        args.keep_workdir = True

    if shutil.which("wrk") is None:
        log("wrk is missing: apt-get install wrk")
        return 1
    binary = os.path.abspath(args.binary)
    only = set(args.only.split(",")) if args.only else None
    wanted = lambda name: only is None or name in only  # noqa: E731
    wall_started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="starrocks-bench-"))
    os.chmod(workdir, 0o755)
    notes: list[str] = []
    cleanup: list = []
    try:
        policy, bench_teams = bench_policy(binary, workdir, args.teams)
        quiet = wait_idle(args.wait_idle)
        if not quiet:
            notes.append(f"the machine was still busy after waiting {args.wait_idle} s at start")
            log(notes[-1])
        fsync = fsync_cost(workdir)
        log(f"fsync median {fsync['median_ms']:.2f} ms on {fsync['filesystem']} ({workdir})")

        pg = None
        pg_bin = find_postgres_bin()
        if not (wanted("dryrun-pg") or wanted("create-pg")):
            pass
        elif pg_bin is None:
            notes.append("PostgreSQL arms skipped: no PostgreSQL server binaries (apt-get install postgresql)")
            log(notes[-1])
        else:
            pg = Postgres(pg_bin, workdir)
            cleanup.append(pg)
            log(f"{pg.version} on port {pg.port}, fsync on")

        ready: dict[str, list[float]] = {}
        log(f"timing {args.ready_samples} starts to /readyz")
        ready["sqlite"] = measure_start_to_ready(binary, workdir, policy, None, args.ready_samples)
        if pg:
            ready["postgres"] = measure_start_to_ready(binary, workdir, policy, pg.url, args.ready_samples)

        sqlite_demo = Demo("demo-sqlite", binary, workdir, policy, None)
        cleanup.append(sqlite_demo)
        ready["sqlite"].insert(0, sqlite_demo.ready_secs)
        demos = {"sqlite": sqlite_demo}
        pg_demo = None
        if pg:
            pg_demo = Demo("demo-pg", binary, workdir, policy, pg.url)
            cleanup.append(pg_demo)
            ready["postgres"].insert(0, pg_demo.ready_secs)
            demos["postgres"] = pg_demo
        poll_demo = None
        if wanted("poll"):
            # The pollers' own gateway, whose ledger holds just their instances: the creates of
            # the other arms would otherwise grow the tables the list and get read.
            poll_demo = Demo("demo-poll", binary, workdir, policy, None)
            cleanup.append(poll_demo)
            demos["sqlite, pollers"] = poll_demo
        time.sleep(0.5)
        idle_rss = {name: proc_status_kb(d.pid, "VmRSS") for name, d in demos.items()}
        log("demo stacks ready: " + ", ".join(f"{n} {d.url}" for n, d in demos.items()))

        simulator = None
        if wanted("direct") or wanted("nginx"):
            simulator = StandaloneSimulator(binary, workdir)
            cleanup.append(simulator)
        nginx = None
        if wanted("nginx"):
            nginx_bin = find_nginx()
            if nginx_bin is None:
                notes.append("nginx arm skipped: nginx is not installed (apt-get install nginx-light)")
                log(notes[-1])
            else:
                nginx = Nginx(nginx_bin, workdir, simulator.simulator_url)
                cleanup.append(nginx)

        bench_token = token_for(sqlite_demo, "bench-user", BENCH_TEAM)
        create_json = json.dumps(CREATE_BODY, separators=(",", ":"))

        arms: list[Arm] = []
        scripts = workdir / "scripts"
        scripts.mkdir()

        def add(name: str, label: str, server, url: str, script: Path, expect_2xx=True, trees=None, poll=None,
                connections=None, check=None):
            if not wanted(name):
                return
            if check:
                check_once(label, *check)
            for conns, threads in ([(connections, 2)] if connections else [(args.connections, 2), (1, 1)]):
                arms.append(Arm(f"{name}-c{conns}", label, url, script, conns, threads, server, expect_2xx,
                                dict(trees or {}), poll))

        add("healthz", "GET /healthz", sqlite_demo, sqlite_demo.url + "/healthz",
            lua_script(scripts / "healthz.lua"), check=("GET", sqlite_demo.url + "/healthz", None, {}, 200))
        bad = {"Authorization": f"Bearer {forged(bench_token)}"}
        add("rejected", "GET /v1/starrocks, bad token signature (401)", sqlite_demo, sqlite_demo.url + "/v1/starrocks",
            lua_script(scripts / "rejected.lua", headers=bad), expect_2xx=False,
            check=("GET", sqlite_demo.url + "/v1/starrocks", None, bad, 401))
        for store, demo in (("sqlite", sqlite_demo), ("pg", pg_demo)):
            if demo is None:
                continue
            if not (wanted(f"dryrun-{store}") or wanted(f"create-{store}")):
                continue
            title = "SQLite" if store == "sqlite" else "PostgreSQL"
            # One employee per bench team, each request the next team's (see bench_policy).
            team_headers = [
                {"Authorization": f"Bearer {token_for(demo, f'bench-user-{team}', team)}",
                 "Content-Type": "application/json"}
                for team in bench_teams
            ]
            headers = team_headers[0]
            trees = {"postgres": pg.pid} if store == "pg" else {}
            for kind, path, status in (("dryrun", "/v1/starrocks/dry-run", 200), ("create", "/v1/starrocks", 201)):
                label = f"POST {path} ({title})"
                add(f"{kind}-{store}", label, demo, demo.url + path,
                    lua_script(scripts / f"{kind}-{store}.lua", "POST", headers, create_json,
                               [(path, h) for h in team_headers]),
                    trees=trees, check=("POST", demo.url + path, create_json, headers, status))
        if simulator:
            # The gateway's own upstream call: the path and body of a dry-run's answer, on a
            # target the standalone simulator knows, with a valid password for the redacted one.
            upstream_path, upstream_body = direct_request(sqlite_demo, bench_token)
            upstream_path = re.sub(r"/instances/[^/]+/starrocks$", f"/instances/{DIRECT_TARGET_ID}/starrocks",
                                   upstream_path)
            direct_headers = {"X-Auth-Token": iam_token(simulator.simulator_url), "Content-Type": "application/json"}
            direct_url = simulator.simulator_url + upstream_path
            add("direct", "POST simulator create, direct", simulator, direct_url,
                lua_script(scripts / "direct.lua", "POST", direct_headers, upstream_body),
                check=("POST", direct_url, upstream_body, direct_headers, 201))
        if nginx:
            nginx_url = nginx.url + upstream_path
            add("nginx", "POST simulator create, through nginx", simulator, nginx_url,
                lua_script(scripts / "nginx.lua", "POST", direct_headers, upstream_body), trees={"nginx": nginx.pid},
                check=("POST", nginx_url, upstream_body, direct_headers, 201))
        if poll_demo:
            alice = token_for(poll_demo, "alice", "analytics")
            ids = create_poll_instances(poll_demo, alice)
            paths = []
            for instance_id in ids:
                paths += ["/v1/starrocks", f"/v1/starrocks/{instance_id}"]
            poll = {"targets": len({t for _, t in POLL_INSTANCES}), "instances": len(ids), "paths": paths}
            poll_headers = {"Authorization": f"Bearer {alice}"}
            check_once("poll", "GET", poll_demo.url + paths[1], None, poll_headers, 200)
            add("poll", f"{args.pollers} pollers: GET /v1/starrocks and /v1/starrocks/{{id}}", poll_demo,
                poll_demo.url, lua_script(scripts / "poll.lua", "GET", poll_headers, None,
                                          [(p, poll_headers) for p in paths]),
                poll=poll, connections=args.pollers)

        planned = len(arms) * (args.warmup + args.rounds * args.seconds)
        log(f"{len(arms)} arms, {args.rounds} rounds of {args.seconds:g} s after {args.warmup:g} s warm-ups: "
            f"about {planned / 60:.1f} min of load")
        for arm in arms:
            if args.warmup > 0:
                arm.warmup = measure(arm, args.warmup, workdir, "warmup")
        retry_budget = args.retry_budget
        for round_number in range(args.rounds):
            order = arms if round_number % 2 == 0 else list(reversed(arms))
            for arm in order:
                attempt = 0
                while True:
                    figures = measure(arm, args.seconds, workdir, f"r{round_number}-{attempt}")
                    busy = figures["foreign_cpu_cores"] > FOREIGN_CPU_LIMIT
                    if not busy or retry_budget < args.seconds:
                        break
                    # Another process took the cores: this run measures it too. Do it again.
                    log(f"round {round_number + 1}/{args.rounds} {arm.key}: other processes used "
                        f"{figures['foreign_cpu_cores']:.2f} cores; repeating the run")
                    figures["round"] = round_number
                    arm.discarded.append(figures)
                    retry_budget -= args.seconds + 1
                    attempt += 1
                    time.sleep(1)
                figures["round"] = round_number
                arm.rounds.append(figures)
                log(f"round {round_number + 1}/{args.rounds} {arm.key:<16} {figures['rps']:>10,.0f} req/s  "
                    f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms"
                    + (f"  [{'; '.join(figures['problems'])}]" if figures["problems"] else ""))

        memory = {}
        iam = {}
        instances = {}
        for name, demo in demos.items():
            memory[name] = {
                "idle_rss_kb": idle_rss[name],
                "peak_hwm_kb": proc_status_kb(demo.pid, "VmHWM"),
                "end_rss_kb": proc_status_kb(demo.pid, "VmRSS"),
            }
            iam[name] = demo.metrics()["iam_token_fetches"]
            instances[name] = demo.sim_stats()["creates_received"]
        repeated = sum(len(arm.discarded) for arm in arms)
        if repeated:
            notes.append(f"{repeated} runs were repeated because other processes used more than "
                         f"{FOREIGN_CPU_LIMIT} cores during them (kept in the JSON as discarded_busy_runs)")
        for arm in arms:
            problems = sorted({p for r in arm.rounds for p in r["problems"]})
            if problems:
                notes.append(f"{arm.key}: " + "; ".join(problems))

        results = {
            "schema": 1,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": args.command or " ".join([sys.argv[0], *sys.argv[1:]]),
            "binary": {"path": args.binary, "sha256": sha256_of(binary),
                       "mtime": datetime.datetime.fromtimestamp(os.path.getmtime(binary), datetime.timezone.utc)
                       .strftime("%Y-%m-%dT%H:%M:%SZ")},
            "tools": {
                "wrk": tool_version(["wrk", "-v"]),
                "nginx": nginx.version if nginx else None,
                "postgres": pg.version if pg else None,
                "python": platform.python_version(),
            },
            "settings": {
                "bench_teams": args.teams,
                "foreign_cpu_limit_cores": FOREIGN_CPU_LIMIT, "retry_budget_seconds": args.retry_budget,
                "seconds": args.seconds, "rounds": args.rounds, "warmup_seconds": args.warmup,
                "connections": args.connections, "pollers": args.pollers,
                "order": "arms interleaved, direction reversed every other round",
                "wrk_threads": {"many": 2, "single": 1},
            },
            "arms": {
                arm.key: {
                    "label": arm.label, "url": arm.url, "connections": arm.connections, "threads": arm.threads,
                    "expect_2xx": arm.expect_2xx, "cpu_trees": list(arm.trees),
                    "poll": {k: v for k, v in arm.poll.items() if k != "paths"} if arm.poll else None,
                    "warmup": arm.warmup, "rounds": arm.rounds, "median": median_figures(arm.rounds),
                    "discarded_busy_runs": arm.discarded,
                }
                for arm in arms
            },
            "other": {
                "fsync": fsync,
                "start_to_ready_s": {
                    name: {"samples": samples, "median": statistics.median(samples)}
                    for name, samples in ready.items()
                },
                "memory_kb": memory,
                "iam_token_fetches": iam,
                "creates_at_end": instances,
            },
            "notes": notes,
        }
        results["targets"] = compute_targets(results, fsync)
        results["definitions"] = {
            "rps": "requests completed / wrk's run time",
            "p50_ms, p99_ms": "wrk's latency histogram, read in its done() hook (microsecond resolution)",
            "server_cpu_us_per_req": "utime+stime of the process under test (/proc/PID/stat) over the run / requests",
            "nginx_cpu_us_per_req, postgres_cpu_us_per_req": "the same for the server's process tree "
                                                              "(own, reaped children's and living children's time)",
            "upstream_calls": "delta of starrocks_gateway_cloud_calls_total by operation over the run",
            "sim": "delta of the simulator's /_sim/stats counters over the run",
            "medians": "per figure, over the rounds (the warm-up run is kept apart)",
        }
        results["wall_seconds"] = time.monotonic() - wall_started
        table = markdown(results)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.write(table)
        log(f"wrote {args.output} ({results['wall_seconds']:.0f} s)")
        if args.update_benchmarks:
            update_benchmarks(args.update_benchmarks, table)
            log(f"updated the bench section of {args.update_benchmarks}")
        return 0
    finally:
        for thing in reversed(cleanup):
            try:
                thing.stop()
            except Exception as error:  # noqa: BLE001 - cleanup must go on
                log(f"cleanup: {error}")
        if args.keep_workdir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
