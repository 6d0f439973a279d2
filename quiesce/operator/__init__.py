"""The quiesce operator (kopf): injects the sidecar, preStop hooks and grace from annotations.

One concept per module, layered as kopf's own source:

- :mod:`~quiesce.operator.settings`   typed operator settings (scope, switches, HA)
- :mod:`~quiesce.operator.resources`  the served workload kinds
- :mod:`~quiesce.operator.reconcile`  pure: object in, the one write it needs out
- :mod:`~quiesce.operator.written`    pure: what the user wrote (last-applied, field owners)
- :mod:`~quiesce.operator.writes`     pure: the request bodies a decision makes (apply, patches)
- :mod:`~quiesce.operator.refusals`   the bounded text of a refusal (reconcile and webhook)
- :mod:`~quiesce.operator.apply`      every request quiesce sends (server-side apply)
- :mod:`~quiesce.operator.rbac`       the sidecar's RoleBinding
- :mod:`~quiesce.operator.events`     Kubernetes Events (kopf's poster, or posted directly)
- :mod:`~quiesce.operator.metrics`    Prometheus metrics (template mode and webhook mode)
- :mod:`~quiesce.operator.runtime`    operator-wide state shared by both modes (kopf's memo)
- :mod:`~quiesce.operator.logs`       text or JSON logging
- :mod:`~quiesce.operator.handlers`   short kopf handlers applying reconcile's decisions
- :mod:`~quiesce.operator.webhook`    webhook mode: admission, certificate keeper, server, mode
- :mod:`~quiesce.operator.runner`     kopf.run with a registry of our own

Never imports :mod:`quiesce.sidecar` (an import-linter contract).
"""
