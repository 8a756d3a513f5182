#!/usr/bin/env python3
"""Cold start, measured locally: process start -> first poll of the Lambda
Runtime API (`GET /2018-06-01/runtime/invocation/next`).

A tiny stand-in for the Runtime API records when each spawned binary first
asks for work; the process is then killed. Each binary is started N times and
the median is reported next to a bare `lambda_http` hello-world built with the
same release profile (the budget in the README: within 1.5x of it).

usage: coldstart.py RUNS BASELINE_BINARY BINARY [BINARY ...]
"""

import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

first_poll = threading.Event()
poll_time = [0.0]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server naming)
        if self.path.endswith("/runtime/invocation/next") and not first_poll.is_set():
            poll_time[0] = time.perf_counter()
            first_poll.set()
        # Never hand out an event: the measurement ends at the first poll.
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def measure(binary, env, runs):
    samples = []
    for _ in range(runs):
        first_poll.clear()
        started = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = first_poll.wait(timeout=10)
        proc.kill()
        proc.wait()
        if not ok:
            sys.exit(f"{binary} never polled the runtime API (exit {proc.returncode})")
        samples.append((poll_time[0] - started) * 1000)
    return statistics.median(samples), min(samples)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    baseline, binaries = sys.argv[2], sys.argv[3:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="coldstart",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_LOG_GROUP_NAME="coldstart",
        AWS_LAMBDA_LOG_STREAM_NAME="coldstart",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="coldstart",
        AWS_SECRET_ACCESS_KEY="coldstart",
        # The production path: DynamoDB client built at cold start (no network
        # call happens before the first request).
        TOLLGATE_STORE="dynamodb:coldstart",
        TOLLGATE_CONFIG=os.path.join(root, "tollgate.example.toml"),
        TOLLGATE_SECRETS=f"file:{tmp}/secrets.json",
        RUST_LOG="warn",
    )
    # Trust-store discovery dominates what the functions do at init (the AWS
    # SDK and reqwest each load the system CA certificates). Measure as the
    # host finds them, and with one CA bundle named by SSL_CERT_FILE, as the
    # Lambda configuration sets it (AL2023: /etc/pki/tls/certs/ca-bundle.crt).
    bundle = next((p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
                   if os.path.exists(p)), None)
    variants = [("system trust store discovery", env)]
    if bundle:
        variants.append((f"SSL_CERT_FILE={bundle}", dict(env, SSL_CERT_FILE=bundle, SSL_CERT_DIR=tmp)))
    for label, variant in variants:
        base_median, base_min = measure(baseline, variant, runs)
        print(f"\n{label}: median of {runs} starts")
        print(f"{'binary':<22} {'median ms':>10} {'min ms':>8} {'x baseline':>11}")
        print(f"{'hello lambda_http':<22} {base_median:>10.2f} {base_min:>8.2f} {1.0:>11.2f}")
        worst = 0.0
        for b in binaries:
            median, low = measure(b, variant, runs)
            ratio = median / base_median
            worst = max(worst, ratio)
            print(f"{os.path.basename(b):<22} {median:>10.2f} {low:>8.2f} {ratio:>11.2f}")
        print(f"worst ratio {worst:.2f} (budget 1.5)")
    server.shutdown()


if __name__ == "__main__":
    main()
