"""A small, well-behaved HTTP app for the rig's pods.

It answers every GET and POST with its own name (so a test can see which
instance served a request), sleeps ``?delay=<ms>`` first when asked (slow
requests in flight), and on SIGTERM stops accepting, finishes what is in
flight and exits, as a graceful app does. With ``--consul`` it registers
itself (HTTP check, ``DeregisterCriticalServiceAfter``) once it listens and
deregisters itself on SIGTERM, as Spring Cloud Consul does. Two variants show
what the sidecar does about Consul itself: ``--keep-registration`` never
deregisters (registers at start only, as many apps do), and
``--reregister-every S`` also registers again every S seconds with
``replace-existing-checks`` (a heartbeat re-registration, which drops a
maintenance check the sidecar set).
Run as ``python -m quiesce.rig.testapp``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server: AppServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.track(self, busy=False)

    def finish(self) -> None:
        self.server.untrack(self)
        super().finish()

    def parse_request(self) -> bool:
        # A request line was read: this connection is busy until answered.
        self.server.track(self, busy=True)
        return super().parse_request()

    def _answer(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        delay_ms = float(query.get("delay", ["0"])[0])
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        body = (self.server.name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping:
            # Draining: answer, then close, so the client does not reuse it.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.server.track(self, busy=False)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class AppServer(ThreadingHTTPServer):
    daemon_threads = False  # in-flight requests finish before exit
    block_on_close = True

    def __init__(self, address: tuple[str, int], name: str) -> None:
        super().__init__(address, Handler)
        self.name = name
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: dict[Handler, bool] = {}  # handler -> busy

    def track(self, handler: Handler, *, busy: bool) -> None:
        with self._lock:
            self._connections[handler] = busy
            close_now = self.stopping and not busy
        if close_now:
            self._close(handler)

    def untrack(self, handler: Handler) -> None:
        with self._lock:
            self._connections.pop(handler, None)

    def drain(self) -> None:
        """Stop accepting, close idle keep-alive connections, let busy ones finish.

        Closing the listener alone is not enough: pooled keep-alive
        connections would keep the process (and its old code) alive.
        """
        with self._lock:
            self.stopping = True
            idle = [h for h, busy in self._connections.items() if not busy]
        for handler in idle:
            self._close(handler)
        self.shutdown()

    @staticmethod
    def _close(handler: Handler) -> None:
        sock: socket.socket = handler.connection
        try:
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return  # a request is arriving: it is answered, then the connection closes
        except BlockingIOError:
            pass  # idle: nothing to read
        except OSError:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # A load balancer closing an idle keep-alive connection is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _consul(addr: str, method: str, path: str, body: object = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    urllib.request.urlopen(req, timeout=5).read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--consul", help="Consul agent address host:port to register with")
    parser.add_argument("--service", default="web", help="Consul service name")
    parser.add_argument("--address", help="address to register (the pod IP)")
    parser.add_argument(
        "--keep-registration", action="store_true", help="never deregister on SIGTERM"
    )
    parser.add_argument(
        "--reregister-every",
        type=float,
        default=0.0,
        help="seconds between re-registrations with replace-existing-checks (0: never)",
    )
    parser.add_argument(
        "--critical-after", default="10s", help="the check's DeregisterCriticalServiceAfter"
    )
    parser.add_argument(
        "--stop-delay",
        type=float,
        default=0.0,
        help="seconds between SIGTERM and the drain (an app that takes a moment to stop)",
    )
    args = parser.parse_args(argv)

    server = AppServer((args.bind, args.port), args.name)
    service_id = f"{args.service}-{args.name}"
    if args.consul:
        address = args.address or args.bind
        registration = {
            "ID": service_id,
            "Name": args.service,
            "Address": address,
            "Port": args.port,
            "Meta": {"pod-name": args.name},
            "Check": {
                "HTTP": f"http://{address}:{args.port}/",
                "Interval": "1s",
                "DeregisterCriticalServiceAfter": args.critical_after,
            },
        }
        _consul(args.consul, "PUT", "/v1/agent/service/register", registration)
        if args.reregister_every > 0:

            def heartbeat() -> None:
                while not server.stopping:
                    time.sleep(args.reregister_every)
                    with contextlib.suppress(OSError):
                        _consul(
                            args.consul,
                            "PUT",
                            "/v1/agent/service/register?replace-existing-checks=true",
                            registration,
                        )

            threading.Thread(target=heartbeat, daemon=True).start()

    def on_sigterm(*_: object) -> None:
        if args.consul and not args.keep_registration:
            try:
                _consul(args.consul, "PUT", f"/v1/agent/service/deregister/{service_id}")
            except OSError as exc:
                print(f"deregistration failed: {exc}", file=sys.stderr, flush=True)
        # shutdown() blocks until serve_forever returns: call it off the main thread.
        threading.Timer(args.stop_delay, server.drain).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"{args.name} listening on {args.bind}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()  # joins in-flight request threads
    print(f"{args.name} drained and exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
