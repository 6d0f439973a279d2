"""quiesce: pods leave their load balancers before they stop.

Layout (one concept per module):

* ``quiesce.plan``      the pure ShutdownPlan core shared by both sides;
* ``quiesce.operator``  the kopf operator that patches pod templates;
* ``quiesce.sidecar``   the aiohttp sidecar that runs a pod's shutdown;
* ``quiesce.lint``      static checks of manifests and Dockerfiles;
* ``quiesce.rig``       the real-component test rig (etcd, kube-apiserver, Consul, HAProxy);
* ``quiesce.cli``       the one ``quiesce`` command, thin, one module per subcommand.
"""

__version__ = "0.1.0"
