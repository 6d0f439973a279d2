"""``python -m quiesce.rig.nodeagent``: play the kubelet for one rig Node."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
import urllib.parse
from pathlib import Path

from quiesce.rig.nodeagent import agent, api


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m quiesce.rig.nodeagent",
        description="Run the pods bound to a rig Node as local processes, as a kubelet would.",
    )
    p.add_argument("--server", required=True, help="API server URL (https://IP:port)")
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--cert", type=Path, required=True, help="the Node's client certificate")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--node-name", required=True)
    p.add_argument("--node-ip", required=True, help="the bridge address (hostIP)")
    p.add_argument("--subnet", required=True, help="the rig bridge's subnet")
    p.add_argument(
        "--first-pod-ip",
        type=int,
        default=101,
        help="host index in the subnet of the first pod IP (default 101: .101 on a /24)",
    )
    p.add_argument("--workdir", type=Path, required=True, help="pod logs and token directories")
    p.add_argument(
        "--backoff",
        type=float,
        default=10.0,
        help="first restart back-off in seconds (kubelet: 10, doubling to 300)",
    )
    p.add_argument("--backoff-max", type=float, default=300.0)
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    url = urllib.parse.urlsplit(args.server)
    client = api.Api(args.server, ca=args.ca, cert=args.cert, key=args.key)
    node = agent.NodeAgent(
        api_client=client,
        node_name=args.node_name,
        node_ip=args.node_ip,
        subnet=ipaddress.IPv4Network(args.subnet),
        first_pod_ip=args.first_pod_ip,
        api_host=url.hostname or args.node_ip,
        api_port=url.port or 443,
        workdir=args.workdir,
        ca_path=args.ca,
        backoff_initial=args.backoff,
        backoff_max=args.backoff_max,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(node.run())
    logging.getLogger(__name__).info(
        "node agent for %s (%s) watching %s", args.node_name, args.node_ip, args.server
    )
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([runner, stopper], return_when=asyncio.FIRST_COMPLETED)
    runner.cancel()
    await node.shutdown()
    logging.getLogger(__name__).info("node agent stopped; every pod sandbox removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
