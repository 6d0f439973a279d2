"""The real-component test rig: etcd, kube-apiserver, controller-manager,
scheduler, a Consul agent and HAProxy, on a bridge network of its own.

``quiesce.rig.rig.Rig`` is the entry point; ``python -m quiesce.rig`` builds,
starts and stops rigs from a shell.
"""
