"""A bounded, open-loop load generator that counts every failure and its reason.

Sends requests at a fixed rate (a mix of GET and POST, each asking the app
for a random processing delay) for a fixed duration, whether or not earlier
ones have answered, as independent clients do. Every request is recorded
(start offset, method, outcome, latency); failures are: connection refused or
reset, timeout, or an HTTP 5xx. It stops by itself, or early on SIGINT (in-flight
requests still finish). Run it in the rig's client namespace:
``python -m quiesce.rig.loadgen --url ... --duration ... --out FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp


@dataclasses.dataclass(frozen=True)
class Result:
    at: float  # seconds since the load started
    method: str
    outcome: str  # "ok", "http 503", "timeout", "refused", "reset", ...
    latency: float  # seconds

    @property
    def failed(self) -> bool:
        return self.outcome != "ok"


@dataclasses.dataclass(frozen=True)
class Summary:
    sent: int
    failed: int
    reasons: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def failure_rate(self) -> float:
        return self.failed / self.sent if self.sent else 0.0


def summarise(results: Iterable[Result]) -> Summary:
    results = list(results)
    latencies = sorted(r.latency * 1000 for r in results)
    reasons = Counter(r.outcome for r in results if r.failed)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return Summary(
        sent=len(results),
        failed=sum(reasons.values()),
        reasons=dict(reasons),
        p50_ms=statistics.median(latencies) if latencies else 0.0,
        p99_ms=pct(0.99),
        max_ms=latencies[-1] if latencies else 0.0,
    )


def _classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "refused"
        return f"connect error ({type(os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "reset"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset" if exc.errno == 104 else f"os error {exc.errno}"
    return type(exc).__name__


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    delay_ms: int,
    started: float,
    timeout: float,
) -> Result:
    t0 = time.monotonic()
    try:
        async with session.request(
            method,
            f"{url}/?delay={delay_ms}",
            data=b"x" * 64 if method == "POST" else None,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            await resp.read()
            outcome = "ok" if resp.status < 500 else f"http {resp.status}"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        outcome = _classify(exc)
    return Result(round(t0 - started, 4), method, outcome, round(time.monotonic() - t0, 4))


async def run(
    url: str,
    *,
    rate: float,
    duration: float,
    post_ratio: float = 0.2,
    delay_ms: tuple[int, int] = (10, 500),
    timeout: float = 10.0,
    seed: int = 1,
    stop: asyncio.Event | None = None,
) -> list[Result]:
    """Send ``rate`` requests/s for ``duration`` s (or until ``stop``); wait for every answer."""
    rng = random.Random(seed)
    stop = stop or asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        tasks = []
        count = int(rate * duration)
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            if stop.is_set():
                break
            method = "POST" if rng.random() < post_ratio else "GET"
            tasks.append(
                asyncio.create_task(
                    _one(session, url, method, rng.randint(*delay_ms), started, timeout)
                )
            )
        return list(await asyncio.gather(*tasks))


def command(
    url: str, *, rate: float, duration: float, out: Path, timeout: float = 10.0
) -> list[str]:
    """The argv that runs this generator (in a namespace: wrap it with ``Namespace.popen``)."""
    return [
        sys.executable, "-m", "quiesce.rig.loadgen", "--url", url, "--rate", str(rate),
        "--duration", str(duration), "--timeout", str(timeout), "--out", str(out),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds (bounded)")
    parser.add_argument("--post-ratio", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per request")
    args = parser.parse_args(argv)
    if args.duration > 3600 or args.rate > 2000:
        parser.error("the load is bounded: --duration <= 3600 s, --rate <= 2000/s")

    async def until_interrupted() -> list[Result]:
        # SIGINT/SIGTERM end the load early; in-flight requests still finish.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run(
            args.url,
            rate=args.rate,
            duration=args.duration,
            post_ratio=args.post_ratio,
            timeout=args.timeout,
            stop=stop,
        )

    results = asyncio.run(until_interrupted())
    with open(args.out, "w") as out:
        for r in results:
            out.write(json.dumps(dataclasses.asdict(r)) + "\n")
            if r.failed:  # every failure is logged with its reason (design: "Noise")
                print(
                    f"failed at {r.at:.3f} s: {r.method} {r.outcome} after {r.latency:.3f} s",
                    file=sys.stderr,
                )
    s = summarise(results)
    print(json.dumps(dataclasses.asdict(s)))
    return 0


def load(path: Path) -> list[Result]:
    return [Result(**json.loads(line)) for line in path.read_text().splitlines() if line]


class Running:
    """One generator run, started by :func:`start`, until :meth:`stop`."""

    def __init__(self, proc: subprocess.Popen[str], out: Path) -> None:
        self.proc, self.out = proc, out

    def stop(self) -> list[Result]:
        """SIGINT (in-flight requests still finish), then every recorded request."""
        self.proc.send_signal(signal.SIGINT)
        _, stderr = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {stderr[-2000:]}")
        return load(self.out)


def start(
    popen: Callable[..., subprocess.Popen[str]],
    url: str,
    *,
    rate: float,
    duration: float,
    out: Path,
) -> Running:
    """Start the generator through ``popen``: a namespace's, the rig's client namespace."""
    proc = popen(
        command(url, rate=rate, duration=duration, out=out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Running(proc, out)


if __name__ == "__main__":
    sys.exit(main())
