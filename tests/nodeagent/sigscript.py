"""A container main process that logs every signal it gets, with a timestamp.

Usage: sigscript.py LOG [--exit-on SIG ...] [--linger SECONDS] [--port PORT]

Each line of LOG is JSON: {"t": <unix time>, "event": "start"|"signal"|"exit",
"signal": name, "pid": pid}. With ``--exit-on`` it exits (code 0) that many
seconds (``--linger``) after one of the given signals; other signals are only
logged. ``--port`` serves HTTP 200 on 0.0.0.0:PORT (``/hook`` logs a "hook" event
with its headers and sleeps ``?sleep=S``), so probes and preStop httpGet work.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CATCH = ("SIGTERM", "SIGQUIT", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--exit-on", nargs="*", default=["SIGTERM", "SIGQUIT", "SIGINT"])
    p.add_argument("--linger", type=float, default=0.0)
    p.add_argument("--port", type=int)
    p.add_argument("--name", default="")
    args, _extra = p.parse_known_args()  # extra words only show in argv
    lock = threading.Lock()

    def record(**fields: object) -> None:
        fields.update(t=time.time(), pid=os.getpid(), name=args.name)
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(fields) + "\n")

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        record(event="signal", signal=name)
        if name in args.exit_on:
            threading.Timer(args.linger, done.set).start()

    for name in CATCH:
        signal.signal(getattr(signal, name), on_signal)

    if args.port:

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/hook":
                    query = urllib.parse.parse_qs(url.query)
                    record(
                        event="hook",
                        headers=dict(self.headers.items()),
                        peer=self.client_address[0],
                    )
                    time.sleep(float(query.get("sleep", ["0"])[0]))
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *a: object) -> None:
                pass

        server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()

    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    record(
        event="start",
        env=dict(os.environ),
        argv=sys.argv,
        cwd=os.getcwd(),
        procs=sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        cgroup=Path("/proc/self/cgroup").read_text(),
        sa=sorted(os.listdir(sa)) if os.path.isdir(sa) else [],
        token=Path(f"{sa}/token").read_text() if os.path.exists(f"{sa}/token") else "",
    )
    while not done.wait(0.05):
        pass
    record(event="exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
