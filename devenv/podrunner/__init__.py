"""A stand-in for the kubelet, for kubetune's TEST AND DEV CLUSTER ONLY.

NEVER USE THIS IN A REAL CLUSTER. It runs a pod's command as a plain local process with
the permissions of whoever started it: no container image, no isolation (no
namespaces, cgroups, seccomp, user switch, read-only root), no resource limits, no
probes, no image pulls, one container per pod. It exists because the machines that
run kubetune's end-to-end tests and ``kubetune dev`` have no container engine, and the
trainer pods must really train for those tests to mean anything.

Which pods: those bound to nodes labelled ``kubetune.io/local-exec=true`` (see
:mod:`devenv.cluster`: a KWOK instance keeps such nodes Ready but leaves their
pods alone) that are KWOK fake nodes (annotation ``kwok.x-k8s.io/node: fake``); a real
node carrying the label by mistake is refused with an error in the log.

How a pod becomes a process (environment, volumes as directories, the
path mapping that replaces mounts, one loopback IP per pod) is in :mod:`.plan`; the
status it reports is in :mod:`.status`; watching, running, signalling and deleting
in :mod:`.runner`; the kubelet's log endpoint in :mod:`.logserver`.

Each pod's output is in ``<workdir>/pods/<namespace>_<name>_<uid8>/container.log``,
and served to the API server's ``pods/log`` (``kubectl logs [-f]``, ``kubetune logs``)
by :mod:`.logserver`, whose address the runner writes into its nodes' status. Not
served: ``exec``, ``attach``, ``port-forward``.

    python -m devenv.podrunner --kubeconfig KUBECONFIG --workdir DIR
"""

from devenv.podrunner.runner import LOCAL_EXEC_LABEL, LocalPod, PodRunner

__all__ = ["LOCAL_EXEC_LABEL", "LocalPod", "PodRunner"]
