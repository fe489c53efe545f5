"""The real node itself, checked with a plain pod of the trainer image: what every job relies
on before any kubetune code runs.

One pod asks for a GPU (the node advertises ``nvidia.com/gpu`` as an extended resource,
so it schedules, and runs on the CPU), runs with the restricted security context the
operator renders (its non-root user, read-only root filesystem, no capabilities, an
emptyDir for ``/tmp``), and checks from inside the container: cluster DNS resolves a Service and a
headless Service's pod host name, the API server answers through the ``kubernetes``
Service, S3 answers at the host's pod-network address, and a name outside the cluster
does not resolve. ``kubectl logs`` and ``kubectl exec`` reach the container through the
kubelet.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from devenv import network
from devenv.cluster import ControlPlane
from devenv.images import TRAINER
from devenv.node import GPU_RESOURCE, REAL_NODE_SELECTOR, REAL_NODE_TOLERATION, RealNode
from devenv.process import poll
from devenv.s3 import S3Server
from kubetune_contract.pod import RUN_AS_USER

pytestmark = pytest.mark.e2e

PROBE = textwrap.dedent(
    """
    import json, os, socket, ssl, urllib.request, urllib.error
    def resolve(name):
        try:
            return socket.gethostbyname(name)
        except OSError as e:
            return f"error: {e}"
    def status(url):
        try:
            context = ssl._create_unverified_context()  # the cluster CA is not mounted
            return urllib.request.urlopen(url, timeout=5, context=context).status
        except urllib.error.HTTPError as e:
            return e.code
    checks = {
        "kubernetes": resolve("kubernetes.default.svc.cluster.local"),
        "headless": resolve("probe-0.probe-hosts"),
        "outside": resolve("example.com"),
        "api": status("https://kubernetes.default.svc/livez"),
        "s3": status(os.environ["S3"]),
        "uid": os.getuid(),
        "root_writable": os.access("/", os.W_OK),
        "tmp_writable": os.access("/tmp", os.W_OK),
    }
    print(json.dumps(checks), flush=True)
    import time; time.sleep(3600)
    """
)


def _probe_pod(s3: S3Server) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "labels": {"app": "probe"}},
        "spec": {
            "hostname": "probe-0",
            "subdomain": "probe-hosts",
            "nodeSelector": REAL_NODE_SELECTOR,
            "tolerations": [REAL_NODE_TOLERATION],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": TRAINER.ref,
                    "command": ["python", "-c", PROBE],
                    "env": [{"name": "S3", "value": s3.pod_endpoint}],
                    "resources": {
                        "requests": {GPU_RESOURCE: "1", "memory": "64Mi"},
                        "limits": {GPU_RESOURCE: "1", "memory": "256Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def _headless_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "probe-hosts"},
        "spec": {"clusterIP": "None", "selector": {"app": "probe"}, "ports": [{"port": 80}]},
    }


def test_a_gpu_pod_runs_restricted_with_pod_network_dns_and_logs(
    control_plane: ControlPlane, real_node: RealNode, s3: S3Server, namespace: str
) -> None:
    kubectl = control_plane.kubectl
    ns = ["-n", namespace]
    kubectl("apply", *ns, "-f", "-", input=json.dumps(_headless_service()))
    kubectl("apply", *ns, "-f", "-", input=json.dumps(_probe_pod(s3)))
    kubectl("wait", *ns, "pod/probe", "--for=condition=Ready", "--timeout=120s", timeout=150)

    def report() -> dict[str, Any] | None:
        out = kubectl("logs", *ns, "probe", check=False).stdout.strip()
        return json.loads(out.splitlines()[-1]) if out.startswith("{") else None

    checks = poll(report, what="the probe printed its checks", timeout=60)
    pod = json.loads(kubectl("get", *ns, "pod/probe", "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["status"]["podIP"].startswith("198.18.16.")
    assert checks["kubernetes"] == network.KUBERNETES_SERVICE_IP
    assert checks["headless"] == pod["status"]["podIP"]
    assert checks["outside"].startswith("error"), "nothing outside the cluster resolves"
    assert checks["api"] == 200, "the API server answers through the kubernetes Service"
    assert checks["s3"] in (200, 403), "S3 answers at the host's pod-network address"
    assert checks["uid"] == RUN_AS_USER
    assert (checks["root_writable"], checks["tmp_writable"]) == (False, True)
    assert kubectl("exec", *ns, "probe", "--", "id", "-u").stdout.strip() == str(RUN_AS_USER)
    allocated = json.loads(kubectl("get", "node", real_node.name, "-o", "json").stdout)
    assert allocated["status"]["allocatable"][GPU_RESOURCE] == str(real_node.gpus)
