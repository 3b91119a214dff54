"""What recording an event costs the caller of sluice.client: per-call time of track/pageview/send.

    .venv/bin/python bench/client.py [--calls 200000]

The client sends to a sink in another process (a standard-library HTTP server answering 202), so
its background thread really serialises, gzips and posts while the calls are timed, as in a
service. Each call is timed on its own (perf_counter_ns around it); the timer's own cost, measured
the same way around nothing, is printed beside. Target: p50 < 10 µs per call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from sluice.client import Client

SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # its headers and body are two writes
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"status":"accepted","event_ids":[]}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def timed(call: Callable[[int], None], calls: int) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for n in range(calls):
        started = clock()
        call(n)
        samples.append(clock() - started)
    return samples


def report(name: str, samples: list[int]) -> None:
    ordered = sorted(samples)
    p50, p90, p99 = (ordered[int(len(ordered) * q)] / 1000 for q in (0.5, 0.9, 0.99))
    mean = statistics.fmean(samples) / 1000
    print(f"{name:<28} p50 {p50:6.2f} µs   p90 {p90:6.2f} µs   p99 {p99:7.2f} µs   mean {mean:6.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        client = Client(f"http://127.0.0.1:{port}", "bench", max_queue=args.calls * 4)
        report("(timer alone)", timed(lambda n: None, args.calls))
        props = {"plan": "pro", "seats": 3}
        report("track(name, props)", timed(lambda n: client.track("signup", props, userId="u-1"), args.calls))
        report("pageview(url, title=)", timed(lambda n: client.pageview("https://a.example/p", title="P"), args.calls))
        event = {"eventType": "request", "method": "GET", "route": "/users/{id}", "status": 200, "durationMs": 1.5}
        report("send(event)", timed(lambda n: client.send(event), args.calls))
        started = time.monotonic()
        delivered = client.close(timeout_s=120)
        print(f"close: {time.monotonic() - started:.2f} s to send the rest; all delivered: {delivered}; {client.stats}")
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
