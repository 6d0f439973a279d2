"""The rig's node agent: a small kubelet for the rig's one Node.

There is no container runtime here and no images, so this agent plays the
kubelet for the Node the rig registers: it watches the pods bound to it on the
real API server, runs each container as a local process in the pod's own
network namespace (a :class:`~quiesce.rig.network.PodSandbox`), reports pod
status as the kubelet does, runs probes and lifecycle hooks, and follows the
kubelet's termination sequence. ``docs/node-agent.md`` writes down, against
the kubelet's own source, what it mirrors and where it differs.
Run as ``python -m quiesce.rig.nodeagent``; the rig starts it with
:func:`quiesce.rig.nodeagent.runner.start_node_agent`.
"""
