"""``quiesce sidecar``: run the sidecar: serve /prestop and run the pod's shutdown.

Imports stay inside :func:`run`: ``quiesce --help`` and the operator never pay
for aiohttp, and the sidecar never for kopf.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Run the quiesce sidecar in a pod. When the kubelet calls GET /prestop (or the
sidecar receives SIGTERM as a regular container), it runs the pod's shutdown,
all within one deadline (the shorter of the plan's grace period and the pod's
deletionGracePeriodSeconds, minus the plan's margin):

  1. deregister  Consul: service maintenance, then deregistration of this pod's
                 instances (agent API, or catalog API for <node>-virtual nodes)
  2. converge    wait at least the floor, at most the ceiling, until Consul's
                 health results, the pod's EndpointSlices and the kernel's socket
                 table (no new inbound connection or request bytes for the
                 adaptive quiet window) agree that load balancers stopped sending
  3. signal      return the hook (the kubelet sends the stop signal), or send the
                 plan's signal to the app's main process, or POST its shutdown URL
  4. drain       optionally hold the hook until no request is in flight

Endpoints: /prestop (needs the X-Quiesce-Token header; from the node or
loopback), /healthz, /readyz, /status (JSON timeline), /metrics (Prometheus).
Against neighbours on the pod network: the soft open-file limit is raised to
the hard one; a connection that sends no request is closed after 5 s; at most
32 connections per address and 256 in all from addresses other than the node
and loopback (the node's /prestop and probes are served past the caps);
malformed requests are one rate-limited debug line, not a traceback each.

The operator injects all configuration as environment variables:
  QUIESCE_PLAN               the ShutdownPlan as JSON (required)
  QUIESCE_TOKEN              the token /prestop requires
  POD_NAME POD_NAMESPACE POD_UID POD_IP HOST_IP   from the downward API
  CONSUL_HTTP_ADDR CONSUL_HTTP_TOKEN(_FILE) CONSUL_CACERT CONSUL_HTTP_SSL(_VERIFY)
  CONSUL_CLIENT_CERT CONSUL_CLIENT_KEY            as Consul's own tools read them
  QUIESCE_CONSUL_BACKEND     auto|agent|catalog|none (default auto, none without
                             CONSUL_HTTP_ADDR)
  QUIESCE_SIDECAR_MODE       native|container (default container)
  QUIESCE_LOG_FORMAT         json|text (default json)
  KUBERNETES_SERVICE_HOST/PORT, QUIESCE_SERVICE_ACCOUNT_DIR, QUIESCE_KUBE_SCHEME
Overrides for tests and unusual clusters:
  QUIESCE_CHECK_SOURCE=false      accept /prestop from any address (token still checked)
  QUIESCE_APP_CONTAINER_IDS=a,b   app container IDs instead of the pod's status
  QUIESCE_LISTEN_HOST, QUIESCE_POLL_INTERVAL, QUIESCE_IDLE_SAMPLE_INTERVAL,
  QUIESCE_CONSUL_TIMEOUT, QUIESCE_KUBE_TIMEOUT, QUIESCE_PROC_ROOT
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sidecar",
        help="run the sidecar: serve /prestop and run the pod's shutdown",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="listen on this port instead of the plan's (default: the plan's port, 7979)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="read and validate the environment, print the settings, exit",
    )
    parser.set_defaults(func=run)


def _import_aiohttp_without_the_system_ca_bundle() -> None:
    """Import aiohttp with an empty CA bundle: saves ~2 MB of the sidecar's 40 MB.

    aiohttp builds two module-level SSL contexts at import, parsing the system
    CA bundle. The sidecar never uses them: every TLS client it makes (Consul
    with ``CONSUL_CACERT``, the API server with the service-account ``ca.crt``)
    builds its own context after this import, with the environment restored.
    """
    import os

    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull
    try:
        import aiohttp.web  # noqa: F401
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from quiesce.sidecar import hardening

    hardening.make_non_dumpable()  # first: the app may share our UID and PID namespace
    from quiesce.sidecar import settings  # the plan's model and codec: no aiohttp yet

    try:
        config = settings.from_env()
    except settings.SettingsError as exc:
        print(f"quiesce sidecar: {exc}", file=sys.stderr)
        return 2
    if args.port is not None:
        plan: Any = config.plan
        config = settings.replace(config, plan=dataclasses.replace(plan, port=args.port))
    if args.check_config:
        import json

        shown = dataclasses.asdict(
            dataclasses.replace(config, token="***" if config.token else None)
        )
        shown["consul"]["token"] = "***" if config.consul.token else None
        print(json.dumps(shown, indent=2, default=str))
        return 0
    # Listen before the heavy imports: the kubelet's first startup probe (or a /prestop
    # for a pod deleted at once) then waits in the backlog and is answered once aiohttp
    # serves, instead of being refused and retried a probe period later (issue 20).
    from quiesce.sidecar import listen

    try:
        sock = listen.bind(config.listen_host, config.plan.port)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        print(
            f"quiesce sidecar: cannot listen on {config.listen_host}:{config.plan.port}: {reason}",
            file=sys.stderr,
        )
        return 1
    held = listen.hold_stop_signals()
    import asyncio

    _import_aiohttp_without_the_system_ca_bundle()
    from quiesce.sidecar import logs, server

    logs.configure(config.log_format, pod=config.pod_name)
    return asyncio.run(server.serve(config, sock=sock, held_signals=held))
