"""``python -m quiesce.rig build|up|down|status``: the rig from a shell."""

from __future__ import annotations

import argparse
import sys
import time

from quiesce.rig import binaries, errors, rig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quiesce.rig", description="Build, start and stop the quiesce test rig."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build every missing binary into ~/.cache/quiesce (once)")
    up = sub.add_parser("up", help="start a rig in the background and print how to reach it")
    up.add_argument("--no-kubernetes", action="store_true", help="only the network and Consul")
    up.add_argument(
        "--node-agent", action="store_true", help="also run the node agent (pods really run)"
    )
    up.add_argument(
        "--real-nodes",
        type=int,
        default=0,
        metavar="N",
        help="also run N real nodes (kubelet, containerd, runc; tainted quiesce.dev/real-node)",
    )
    sub.add_parser("down", help="stop every rig started with `up`, leaving no process behind")
    sub.add_parser("status", help="list running rigs")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            took = binaries.ensure_all()
            print("all rig binaries are built" + (f" (took {took})" if took else " (cached)"))
            from quiesce.rig.realnode import product

            image = product.quiesce_image()
            print(f"the quiesce image is built: {image.name} ({image.archive})")
        elif args.cmd == "up":
            binaries.ensure_all()
            started = time.monotonic()
            r = rig.Rig.start(
                rig.detached_workdir(),
                kubernetes=not args.no_kubernetes,
                node_agent=args.node_agent and not args.no_kubernetes,
            )
            if args.real_nodes and not args.no_kubernetes:
                from quiesce.rig.realnode.node import RealNode

                try:
                    for i in range(1, args.real_nodes + 1):
                        node = RealNode.start(r, f"rig-real-{i}", i)
                        print(f"# real node {node.name}: {node.ip}, netns {node.netns}")
                except BaseException:
                    r.stop()
                    raise
            print(f"# rig up in {time.monotonic() - started:.1f} s; logs in {r.workdir}/logs")
            for key, value in r.env().items():
                print(f"export {key}={value}")
            print(f"# bridge {r.network.bridge} {r.network.subnet}, node IP {r.network.host_ip}")
            print("# stop it with: python -m quiesce.rig down")
        elif args.cmd == "down":
            states = rig.running_rigs()
            for state in states:
                rig.stop_from_state(state)
                print(f"stopped rig {state.parent.name}")
            if not states:
                print("no rig is running")
        elif args.cmd == "status":
            for state in rig.running_rigs():
                print(state.parent.name, state.read_text())
    except errors.RigError as exc:
        print(f"rig: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
