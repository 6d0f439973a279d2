"""Names vulture (the dead-code check in ``./dev test``) cannot see being used.

Each line is reviewed: it says who uses the name. Add a name here only with
its reason; anything else vulture reports is dead code and goes.
"""

# Vulture matches names only, so ``_.name`` stands for the attribute wherever it is.

# PyYAML calls these on its resolver (the line-tracking loader overrides them).
_.descend_resolver
_.ascend_resolver
_.resolve
# The output formats the lint tests iterate (the CLI's choices are the same three).
_.FORMATS
# Read by the kubernetes client's Configuration.
_.connection_pool_maxsize
# kopf handlers, registered by their decorators on quiesce's private registry.
_.namespace_event
_.webhook_startup
_.webhook_cleanup
_.inject_pod
# kopf settings attributes written at startup.
_.mandatory
_.server_timeout
_.client_timeout
_.chunk_size
_.idle_timeout
# Module protocol: lazy re-exports (PEP 562).
_.__getattr__
_.__dir__
# Plan fields read through dataclasses (the codec) and by the tests.
_.exec_hook_replaced
# A socket row's field, shown by tests and kept for the receipt of who sent last.
_.local_ip
# The blocking sample, for tests and tools; the sidecar uses asample.
_.sample
# aiohttp's BaseSite.stop() closes the server a site stores in _server (limits.GuardedSite).
_._server
