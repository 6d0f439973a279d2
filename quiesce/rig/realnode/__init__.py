"""Real nodes for the rig: a kubelet with containerd and runc, each in namespaces of its own.

See :mod:`quiesce.rig.realnode.node` and ``docs/real-node.md``.
"""
