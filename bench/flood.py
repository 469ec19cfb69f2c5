#!/usr/bin/env python3
"""Memory under a flood of held connections, and after it (Python 3 standard library only).

Starts the demo from a release binary (`bench/flood.py BINARY`), then:

  idle     RSS after a few ordinary requests
  held     N clients each send a create's head and the start of its body, then go silent;
           RSS while all of them are held, and whether an ordinary request is still answered
  after    the clients are answered 408 (server.body_timeout_ms) or hang up; RSS once the
           gateway has had `--settle` seconds to give memory back

Results go to bench/results/flood.json and a Markdown summary to stdout; BENCHMARKS.md
discusses them. A figure, not a test: nothing here asserts a bound. The allocator's
environment passes through, so `MIMALLOC_PURGE_DELAY=0 bench/flood.py …` measures the
container's setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Demo, http, log, proc_status_kb, token_for  # noqa: E402

POLICY = ROOT / "config" / "policy.example.toml"


def rss_mib(pid: int) -> float:
    return (proc_status_kb(pid, "VmRSS") or 0) / 1024


def silent_partial_create(port: int, token: str) -> socket.socket | None:
    head = (
        "POST /v1/starrocks HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        'Content-Length: 200\r\n\r\n{"name": "slow'
    )
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(head.encode())
        return sock
    except OSError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="release binary of starrocks-gateway")
    parser.add_argument("--clients", type=int, default=9_000,
                        help="silent clients (below server.max_connections, 10,000 by default)")
    parser.add_argument("--body-timeout-ms", type=int, default=10_000)
    parser.add_argument("--settle", type=int, default=5, help="seconds to wait before the last reading")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "flood.json")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.clients + 256:
        log(f"the descriptor limit ({hard}) holds fewer than {args.clients} clients")
        return 1
    os.environ["SRGW_SERVER__BODY_TIMEOUT_MS"] = str(args.body_timeout_ms)
    workdir = Path(tempfile.mkdtemp(prefix="starrocks-flood-"))
    demo = Demo("flood", os.path.abspath(args.binary), workdir, POLICY, None)
    try:
        token = token_for(demo, "alice", "analytics")
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(50):
            http("GET", demo.url + "/v1/me", headers=auth)
        time.sleep(1)
        idle = rss_mib(demo.pid)

        started = time.monotonic()
        held = [s for s in (silent_partial_create(demo.port, token) for _ in range(args.clients)) if s]
        opened_secs = time.monotonic() - started
        time.sleep(1)
        peak = rss_mib(demo.pid)
        probe_started = time.monotonic()
        status, _, _ = http("GET", demo.url + "/v1/me", headers=auth, timeout=10)
        probe_ms = (time.monotonic() - probe_started) * 1000

        answered_408 = 0
        deadline = time.monotonic() + args.body_timeout_ms / 1000 + 15
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                answered_408 += sock.recv(64).startswith(b"HTTP/1.1 408")
            except OSError:
                pass
            sock.close()
        time.sleep(args.settle)
        after = rss_mib(demo.pid)
    finally:
        demo.stop()

    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "binary": args.binary,
        "clients": args.clients,
        "held": len(held),
        "opened_secs": round(opened_secs, 2),
        "answered_408": answered_408,
        "probe_while_held": {"status": status, "ms": round(probe_ms, 1)},
        "rss_mib": {"idle": round(idle, 1), "held": round(peak, 1), "after": round(after, 1)},
        "settle_secs": args.settle,
        "mimalloc_purge_delay": os.environ.get("MIMALLOC_PURGE_DELAY", "default"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"- {len(held)} silent clients held ({answered_408} answered 408 when their body was overdue); "
        f"an ordinary request meanwhile: {status} in {probe_ms:.1f} ms\n"
        f"- RSS: idle {idle:.1f} MiB, while held {peak:.1f} MiB, {args.settle} s after {after:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
