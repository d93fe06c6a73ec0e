#!/usr/bin/env python3
"""Worker restart time of an isolated group, for ops/bench/isolation.sh.

berth serves host/fixtures/crashy with `isolation = "process"`. Each round sends
`GET /crashy/abort` (the worker aborts; berth must answer 502), then polls `GET /crashy/ok` as
fast as it can until it answers 200: the restart time is from receiving the 502 to receiving
that 200. One keep-alive connection, re-opened whenever it fails or the server closes it.
`--warmup` rounds first are not counted. The worker's pid (`GET /crashy/pid`) must differ before
and after.

Prints what berth answered while the worker was down, then, last, one line
`restart_ms n=N p50=X p99=Y max=Z` (nearest-rank percentiles, milliseconds).
"""

import argparse
import http.client
import json
import math
import sys
import time
from collections import Counter


class Client:
    """GETs over one keep-alive connection, re-opened after any failure."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None
        self.opened = 0

    def get(self, path):
        """(status, body) of `GET path`, or None when the connection failed."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.opened += 1
        try:
            self.conn.request("GET", path)
            res = self.conn.getresponse()
            body = res.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return None
        if res.will_close:
            self.close()
        return res.status, body

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def fail(message):
    print(f"restart_driver: {message}", file=sys.stderr)
    sys.exit(1)


def worker_pid(client):
    answer = client.get("/crashy/pid")
    if answer is None or answer[0] != 200:
        fail(f"GET /crashy/pid answered {answer!r}")
    return json.loads(answer[1])["pid"]


def one_restart(client, timeout, answers):
    """Crashes the worker and waits for it to serve again; returns the restart time in seconds."""
    crash = client.get("/crashy/abort")
    received = time.perf_counter()
    if crash is None:
        fail("GET /crashy/abort got no answer (the connection failed); expected a 502")
    if crash[0] != 502:
        fail(f"GET /crashy/abort answered {crash[0]} {crash[1][:200]!r}; expected a 502")
    while True:
        answer = client.get("/crashy/ok")
        now = time.perf_counter()
        if answer is not None and answer[0] == 200:
            if answer[1] != b"ok":
                fail(f"GET /crashy/ok answered 200 {answer[1][:200]!r}; expected `ok`")
            return now - received
        answers["connection failed" if answer is None else answer[0]] += 1
        if now - received > timeout:
            fail(f"the worker did not serve again within {timeout} s of a crash")


def percentile(sorted_values, p):
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--crashes", type=int, default=200, help="counted rounds")
    ap.add_argument("--warmup", type=int, default=3, help="rounds before counting")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a restart may take")
    ap.add_argument("--samples", help="file to write each restart time to (ms, one a line)")
    args = ap.parse_args()
    if args.crashes < 1:
        fail("--crashes must be at least 1")

    client = Client(args.host, args.port, args.timeout)
    before = worker_pid(client)
    answers = Counter()
    for _ in range(args.warmup):
        one_restart(client, args.timeout, Counter())
    times = [one_restart(client, args.timeout, answers) * 1000 for _ in range(args.crashes)]
    after = worker_pid(client)
    if after == before:
        fail(f"the worker is still pid {before} after {args.warmup + args.crashes} crashes")

    if args.samples:
        with open(args.samples, "w") as f:
            f.writelines(f"{t:.3f}\n" for t in times)
    seen = ", ".join(f"{k} x{n}" for k, n in sorted(answers.items(), key=lambda kv: -kv[1])) or "nothing"
    print(f"restart: {args.crashes} crashes counted ({args.warmup} warm-up), worker pid {before} -> {after}, "
          f"{client.opened} connection(s) opened; answers while the worker was down: {seen}")
    times.sort()
    print(f"restart_ms n={len(times)} p50={percentile(times, 50):.3f} p99={percentile(times, 99):.3f} "
          f"max={times[-1]:.3f}")


if __name__ == "__main__":
    main()
