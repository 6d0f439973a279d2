"""Every annotation key quiesce reads or writes, in one place.

Users write ``quiesce.dev/<key>`` (validated: an unknown key is an error, so a
typo is never silently ignored). The operator's own bookkeeping lives under
``state.quiesce.dev/<key>`` and is never read as user input.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "quiesce.dev/"
STATE_PREFIX: Final = "state.quiesce.dev/"

# --- user-facing keys (quiesce.dev/*) -------------------------------------
INJECT: Final = PREFIX + "inject"
CONSUL_SERVICE: Final = PREFIX + "consul-service"
DEREGISTER_TIMEOUT: Final = PREFIX + "deregister-timeout"
CONVERGE_MIN: Final = PREFIX + "converge-min"
CONVERGE_MAX: Final = PREFIX + "converge-max"
QUIET_WINDOW: Final = PREFIX + "quiet-window"
HOOK_TIMEOUT: Final = PREFIX + "hook-timeout"
DRAIN_TIMEOUT: Final = PREFIX + "drain-timeout"
MARGIN: Final = PREFIX + "margin"
GRACE_PERIOD: Final = PREFIX + "grace-period"
SIGNAL: Final = PREFIX + "signal"
SHUTDOWN_URL: Final = PREFIX + "shutdown-url"
CONTAINERS: Final = PREFIX + "containers"
PORT: Final = PREFIX + "port"
EXEC_HOOK: Final = PREFIX + "exec-hook"
SIDECAR_MODE: Final = PREFIX + "sidecar-mode"
LONG_LIVED_PORTS: Final = PREFIX + "long-lived-ports"
AUTO_UPGRADE: Final = PREFIX + "auto-upgrade"
LINT_IGNORE: Final = PREFIX + "lint-ignore"

# --- operator bookkeeping (state.quiesce.dev/*) -----------------------------
STATE_PLAN_HASH: Final = STATE_PREFIX + "plan-hash"
STATE_STATUS: Final = STATE_PREFIX + "status"
STATE_REPLACED: Final = STATE_PREFIX + "replaced"
# Hash of the workload's own pod spec (quiesce's changes undone): tells a user's template
# change (which carries a new sidecar image along) from a quiesce upgrade (which does not).
STATE_TEMPLATE_HASH: Final = STATE_PREFIX + "template-hash"
STATE_KEYS: Final = (STATE_PLAN_HASH, STATE_TEMPLATE_HASH, STATE_REPLACED, STATE_STATUS)

# --- labels -------------------------------------------------------------------
# On a Namespace: "true" switches the operator off there (nothing injected, nothing restored).
DISABLED_LABEL: Final = PREFIX + "disabled"
