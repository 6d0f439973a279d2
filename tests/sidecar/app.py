"""A small real HTTP app for the sidecar's tests.

Logs every event (signals, /hook, /shutdown, requests) with a monotonic-free
wall timestamp to ``--events``, one JSON object per line, so a test can check
the order: the app got its signal only after quiet was observed.

Usage: python app.py --port 8080 --events FILE [--exit-on QUIT] [--ignore TERM]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--events", required=True)
    parser.add_argument("--exit-on", action="append", default=[])
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to keep serving")
    args = parser.parse_args()
    lock = threading.Lock()
    events = open(args.events, "a", buffering=1)  # noqa: SIM115

    def record(kind: str, **detail: object) -> None:
        with lock:
            events.write(json.dumps({"t": time.time(), "event": kind, **detail}) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *a: object) -> None:
            pass

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/hook"):
                record("hook", headers=dict(self.headers))
            elif self.path.startswith("/slow"):
                time.sleep(float(self.path.split("=", 1)[1]) / 1000)
            record("request", method="GET", path=self.path, peer=self.client_address[0])
            self._answer(200, f"ok {os.getpid()}\n".encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            if self.path == "/shutdown":
                record("shutdown")
                self._answer(200, b"bye\n")
                threading.Thread(target=stop, daemon=True).start()
                return
            record("request", method="POST", path=self.path, peer=self.client_address[0])
            self._answer(200, b"posted\n")

    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True

    def stop() -> None:
        time.sleep(args.linger)
        record("exit")
        httpd.shutdown()

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        record("signal", signal=name)
        if name.removeprefix("SIG") in args.exit_on:
            threading.Thread(target=stop, daemon=True).start()

    for name in {"TERM", "QUIT", "INT", "USR1", *args.exit_on, *args.ignore}:
        signal.signal(getattr(signal, "SIG" + name), on_signal)
    record("ready", pid=os.getpid())
    httpd.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
