"""A real Kubernetes control plane with KWOK fake GPU nodes, started as local processes.

Why: kubetune is an operator, so its tests need a real kube-apiserver (schema and CEL
validation, RBAC, server-side apply, the Job controller, the scheduler, the garbage
collector), not a mock. The machines have no container engine, so every component is a
plain process built by :mod:`devenv.build`:

* etcd (``--unsafe-no-fsync``: the data dir is thrown away anyway),
* kube-apiserver with RBAC authorization, client-certificate auth, service-account keys,
* kube-controller-manager (Job controller, garbage collector, service accounts, ...),
* kube-scheduler (KWOK does not bind pods; the scheduler really places them),
* KWOK, which keeps the fake nodes Ready and moves pods through their lifecycle.

Every port is picked by the kernel, and everything lives in one work directory, so two
clusters can run side by side. Readiness is polled (etcd ``/health``, the apiserver's
``/readyz``, the controller-manager's ``/healthz``, the scheduler's ``/readyz``, node
``Ready`` conditions, the ``default`` service account); a component that dies or does not
get ready raises :class:`~devenv.process.ComponentError` with its log tail.

Fake nodes (:data:`DEFAULT_NODES`): ``gpu-h100-0`` and ``gpu-h100-1`` (8 x
``nvidia.com/gpu``, label ``nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3``), ``gpu-a100-0``
(8 x ``NVIDIA-A100-SXM4-40GB``); all GPU nodes carry the taint ``nvidia.com/gpu=present:
NoSchedule``. ``cpu-0`` has no GPUs and no taint.

Pod lifecycle (KWOK stages written by :func:`pod_stages`), keys to remember:

``kubetune.io/test-phase`` (pod annotation)
    absent: the pod becomes Running; a Job-owned pod then Succeeds at once (exit 0).
    ``Running``: Running, and it stays Running (also for Job pods).
    ``Succeeded`` / ``Failed``: Running, then that phase; the container terminates with
    exit code ``kubetune.io/test-exit-code`` (default 0 / 1) and termination message
    ``kubetune.io/test-termination-message`` (default empty).
    ``Pending``: KWOK leaves the bound pod alone; the test writes ``status`` itself.
KWOK manages only nodes annotated ``kwok.x-k8s.io/node=fake`` (every :class:`FakeNode`);
a real kubelet node (:mod:`devenv.node`) joins the same control plane and KWOK leaves it
alone. Deleted pods on KWOK nodes are finalised and removed by KWOK (what a kubelet would
do).

Addresses (:mod:`devenv.network`): Services, fake pods and the address the API server
advertises all come from 198.18.0.0/15. The API server listens on every address, so that
pods on a real node reach it at the host's pod-network address (``kubernetes`` Service
``198.19.0.1:443``, kept in its Endpoints by the lease reconciler); clients here use
127.0.0.1. Authorization is Node + RBAC, as in a kubeadm cluster, so a kubelet acts only
for its own pods.

Run ``python -m devenv cluster`` for a cluster on the command line.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devenv import build, network
from devenv.certs import CertificateAuthority, KeyPair, service_account_keys
from devenv.process import ComponentError, Process, free_port, wait_for

__all__ = [
    "DEFAULT_NODES",
    "FAKE_NODE_ANNOTATION",
    "TEST_EXIT_CODE_ANNOTATION",
    "TEST_PHASE_ANNOTATION",
    "TEST_TERMINATION_MESSAGE_ANNOTATION",
    "ComponentError",
    "ControlPlane",
    "FakeNode",
    "KubectlError",
    "pod_stages",
]

Log = Callable[[str], None]

TEST_PHASE_ANNOTATION = "kubetune.io/test-phase"
TEST_EXIT_CODE_ANNOTATION = "kubetune.io/test-exit-code"
TEST_TERMINATION_MESSAGE_ANNOTATION = "kubetune.io/test-termination-message"
GPU_RESOURCE = "nvidia.com/gpu"
#: The annotation KWOK selects its nodes by (KWOK's own convention).
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class FakeNode:
    """A KWOK node: name, GPUs and their product, CPU/memory, extra labels/taints."""

    name: str
    gpus: int = 0
    gpu_product: str | None = None
    cpu: str = "64"
    memory: str = "512Gi"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()

    def manifest(self) -> dict[str, Any]:
        """The Node object (status included: the apiserver keeps status on node create)."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.labels,
        }
        taints: list[dict[str, str]] = [dict(t) for t in self.taints]
        resources = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": "110",
            "ephemeral-storage": "1Ti",
        }
        if self.gpus:
            resources[GPU_RESOURCE] = str(self.gpus)
            labels["nvidia.com/gpu.count"] = str(self.gpus)
            if self.gpu_product:
                labels[GPU_PRODUCT_LABEL] = self.gpu_product
            taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {
                    FAKE_NODE_ANNOTATION: "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                },
            },
            "spec": {"taints": taints} if taints else {},
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }


DEFAULT_NODES: tuple[FakeNode, ...] = (
    FakeNode("gpu-h100-0", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3", cpu="192", memory="2Ti"),
    FakeNode("gpu-h100-1", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3", cpu="192", memory="2Ti"),
    FakeNode("gpu-a100-0", gpus=8, gpu_product="NVIDIA-A100-SXM4-40GB", cpu="128", memory="1Ti"),
    FakeNode("cpu-0", cpu="32", memory="128Gi"),
)


def _phase_key() -> str:
    return f'.metadata.annotations["{TEST_PHASE_ANNOTATION}"]'


def _terminated_template(phase: str, default_code: int, reason: str) -> str:
    """statusTemplate that terminates every container and sets the pod ``phase``."""
    code = f'(index $.metadata.annotations "{TEST_EXIT_CODE_ANNOTATION}")'
    msg = f'(index $.metadata.annotations "{TEST_TERMINATION_MESSAGE_ANNOTATION}")'
    return f"""\
{{{{ $now := Now }}}}
containerStatuses:
{{{{ range $index, $item := .spec.containers }}}}
- image: {{{{ $item.image | Quote }}}}
  name: {{{{ $item.name | Quote }}}}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: {{{{ if $.metadata.annotations }}}}{{{{ or {code} "{default_code}" }}}}{{{{ else }}}}{default_code}{{{{ end }}}}
      {{{{ if $.metadata.annotations }}}}{{{{ with {msg} }}}}message: {{{{ . | Quote }}}}{{{{ end }}}}{{{{ end }}}}
      finishedAt: {{{{ $now | Quote }}}}
      reason: {reason}
      startedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
phase: {phase}
"""  # noqa: E501


def _stage(name: str, exprs: list[dict[str, Any]], nxt: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": exprs},
            "next": nxt,
        },
    }


def pod_stages(pod_ready: Mapping[str, Any]) -> list[dict[str, Any]]:
    """KWOK pod Stages implementing the lifecycle in the module docstring.

    ``pod_ready`` is KWOK's own ``pod-ready`` Stage (shipped with the kwok build); its
    status template is reused and only its selector gains the ``Pending`` opt-out.
    """
    alive = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
    running = {"key": ".status.phase", "operator": "In", "values": ["Running"]}
    ready = json.loads(json.dumps(pod_ready))
    ready["metadata"]["name"] = "kubetune-pod-ready"
    ready["spec"]["selector"]["matchExpressions"].append(
        {"key": _phase_key(), "operator": "NotIn", "values": ["Pending"]}
    )
    return [
        ready,
        _stage(
            "kubetune-job-pod-complete",
            [
                alive,
                running,
                {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
                {"key": _phase_key(), "operator": "DoesNotExist"},
            ],
            {"statusTemplate": _terminated_template("Succeeded", 0, "Completed")},
        ),
        _stage(
            "kubetune-pod-succeeded",
            [alive, running, {"key": _phase_key(), "operator": "In", "values": ["Succeeded"]}],
            {"statusTemplate": _terminated_template("Succeeded", 0, "Completed")},
        ),
        _stage(
            "kubetune-pod-failed",
            [alive, running, {"key": _phase_key(), "operator": "In", "values": ["Failed"]}],
            {"statusTemplate": _terminated_template("Failed", 1, "Error")},
        ),
        _stage(
            "kubetune-pod-delete",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            {"finalizers": {"empty": True}, "delete": True},
        ),
    ]


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike its base class, the message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


def _default_log(msg: str) -> None:
    print(f"[devenv cluster] {msg}", flush=True)


class ControlPlane:
    """etcd + kube-apiserver + controller-manager + scheduler + KWOK, as local processes.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``kubeconfig`` is an
    admin kubeconfig (client certificate in ``system:masters``) with embedded data.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        nodes: Sequence[FakeNode] = DEFAULT_NODES,
        binaries: build.Binaries | None = None,
        log: Log = _default_log,
        pod_cidr: str = network.KWOK_POD_CIDR,
        audit_policy: str | None = None,
        apiserver_flags: Sequence[str] = (),
        controller_manager_flags: Sequence[str] = (),
    ) -> None:
        """``pod_cidr``: the addresses KWOK gives pods (the operator bench picks loopback
        ones a local server answers for). ``audit_policy``: an audit Policy document; the
        API server then logs to :attr:`audit_log` (tests count the operator's writes
        there). The flags are appended to those components' command lines (fault tests
        shorten the node-failure timeouts, the bench raises the controllers' API rate)."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubetune-cp-"))
        self.nodes = list(nodes)
        self.bins = binaries or build.binaries()
        self.pod_cidr = pod_cidr
        self.audit_policy = audit_policy
        self.audit_log = self.workdir / "audit.log"
        self.apiserver_flags = list(apiserver_flags)
        self.controller_manager_flags = list(controller_manager_flags)
        self.log = log
        self.procs: list[Process] = []
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        #: The API server as a real node and its pods reach it (the host's address on
        #: the pod network; :mod:`devenv.network`).
        self.node_server = f"https://{network.HOST_ADDRESS}:{self.port}"
        self._ssl: ssl.SSLContext | None = None
        self._readiness: dict[str, tuple[Callable[[], bool], str]] = {}
        self.ready_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> ControlPlane:
        """Start every component and return once nodes are Ready and controllers run.

        On failure all started processes are stopped and the work directory (with
        every log) is kept; the error carries the failing component's log tail.
        """
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._start(deadline)
        except BaseException:
            self._stop_processes()
            self.log(f"start failed; logs kept in {self.logs}")
            raise
        self.ready_seconds = time.monotonic() - started
        self.log(f"ready in {self.ready_seconds:.1f}s: {self.server}, KUBECONFIG={self.kubeconfig}")
        return self

    def stop(self) -> None:
        """Stop every component by pid (reverse start order) and remove the data."""
        self._stop_processes()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def _spawn(
        self, name: str, args: Sequence[str | Path], ready: Callable[[], bool], what: str
    ) -> Process:
        """Start a component; remember how, and how to tell it is ready, for restarts."""
        self.log(f"starting {name}")
        proc = Process(name, [str(a) for a in args], self.logs / f"{name}.log")
        self.procs.append(proc)
        self._readiness[name] = (ready, what)
        return proc

    def restart(self, name: str, *, kill: bool = False, timeout: float = 120.0) -> float:
        """Stop the component ``name`` (SIGTERM, or SIGKILL with ``kill``), start it again
        with the same command line, and return the seconds until it is ready again.

        For fault tests: clients (the operator, the kubelet, KWOK) must reconnect on their
        own. The log file is appended to, so one log tells the component's whole story.
        """
        old = next(p for p in self.procs if p.name == name)
        started = time.monotonic()
        if kill:
            old.kill()
        else:
            old.stop()
        proc = Process(name, old.args, old.log_file)
        self.procs[self.procs.index(old)] = proc
        ready, what = self._readiness[name]
        wait_for(proc, ready, what=what, timeout=timeout)
        return time.monotonic() - started

    @staticmethod
    def _left(deadline: float) -> float:
        return max(1.0, deadline - time.monotonic())

    def _wait_ready(self, proc: Process, deadline: float) -> None:
        ready, what = self._readiness[proc.name]
        wait_for(proc, ready, what=what, timeout=self._left(deadline))

    def _start(self, deadline: float) -> None:
        missing = [str(p) for p in vars(self.bins).values() if not Path(p).is_file()]
        if missing:
            raise ComponentError(f"binaries missing: {missing}; run `python -m devenv build`")
        self.logs.mkdir(parents=True, exist_ok=True)
        ca, _admin, sa = self._write_pki()
        etcd = self._start_etcd(deadline)
        apiserver = self._spawn(
            "kube-apiserver",
            self._apiserver_args(ca, sa, etcd),
            lambda: self._get_text("/readyz") == "ok",
            "GET /readyz returns ok",
        )
        self._wait_ready(apiserver, deadline)
        kcm_port, sched_port = free_port(), free_port()
        kcm = self._spawn(
            "kube-controller-manager",
            [
                self.bins.kube_controller_manager,
                f"--kubeconfig={self._component_kubeconfig(ca, 'kube-controller-manager')}",
                f"--authentication-kubeconfig={self.pki / 'kube-controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.pki / 'kube-controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                f"--cluster-signing-cert-file={ca.cert}",
                f"--cluster-signing-key-file={ca.key}",
                "--controllers=*",
                "--concurrent-gc-syncs=5",
                *self.controller_manager_flags,
            ],
            lambda: self._component_healthy(kcm_port, "/healthz"),
            "GET /healthz returns ok",
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                self.bins.kube_scheduler,
                f"--kubeconfig={self._component_kubeconfig(ca, 'kube-scheduler')}",
                f"--authentication-kubeconfig={self.pki / 'kube-scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.pki / 'kube-scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
            ],
            lambda: self._component_healthy(sched_port, "/readyz"),
            "GET /readyz returns ok",
        )
        kwok = self._start_kwok()
        for node in self.nodes:
            self.add_node(node, wait=False)
        self._wait_ready(kcm, deadline)
        self._wait_ready(scheduler, deadline)
        wait_for(
            kwok,
            lambda: self._nodes_ready([n.name for n in self.nodes]),
            what="every fake node is Ready",
            timeout=self._left(deadline),
        )
        wait_for(
            kcm,
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
            what="the 'default' service account exists",
            timeout=self._left(deadline),
        )

    # -- components ------------------------------------------------------------------

    def _write_pki(self) -> tuple[KeyPair, KeyPair, KeyPair]:
        ca = CertificateAuthority(self.pki)
        self._ca = ca
        self._serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", network.HOST_ADDRESS, network.KUBERNETES_SERVICE_IP),
        )
        admin = ca.issue("admin", "kubetune-admin", orgs=("system:masters",))
        self._admin = admin
        # The API server's identity towards kubelets (logs, exec, port-forward).
        self._kubelet_client = ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",)
        )
        sa = service_account_keys(self.pki)
        self._write_kubeconfig(self.kubeconfig, admin)
        return KeyPair(ca.cert, ca.key), admin, sa

    def _write_kubeconfig(
        self, path: Path, client: KeyPair, user: str = "admin", server: str | None = None
    ) -> None:
        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubetune-test",
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority-data": b64(self._ca.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(client.cert),
                        "client-key-data": b64(client.key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "kubetune-test",
                    "context": {
                        "cluster": "kubetune-test",
                        "user": user,
                    },
                }
            ],
            "current-context": "kubetune-test",
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)

    @property
    def ca_cert(self) -> Path:
        """The cluster CA's certificate (it signs every serving and client certificate)."""
        return self._ca.cert

    def client_kubeconfig(
        self, name: str, user: str, groups: tuple[str, ...] = (), *, server: str | None = None
    ) -> Path:
        """A kubeconfig ``<pki>/<name>.kubeconfig`` for ``user`` in ``groups`` (a client
        certificate signed by the cluster CA), pointing at ``server`` (default: 127.0.0.1)."""
        pair = self._ca.issue(name, user, orgs=groups)
        path = self.pki / f"{name}.kubeconfig"
        self._write_kubeconfig(path, pair, user=name, server=server)
        return path

    def _component_kubeconfig(self, ca: KeyPair, name: str) -> Path:
        # The controller-manager runs every controller under its own identity (no
        # per-controller service accounts: faster start), so it needs system:masters.
        orgs = ("system:masters",) if name == "kube-controller-manager" else ()
        return self.client_kubeconfig(name, f"system:{name}", orgs)

    def _start_etcd(self, deadline: float) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"

        def healthy() -> bool:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")

        proc = self._spawn(
            "etcd",
            [
                self.bins.etcd,
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
            healthy,
            f"GET {url}/health reports healthy",
        )
        self._wait_ready(proc, deadline)
        return url

    def _apiserver_args(self, ca: KeyPair, sa: KeyPair, etcd: str) -> list[str | Path]:
        return [
            self.bins.kube_apiserver,
            f"--etcd-servers={etcd}",
            "--bind-address=0.0.0.0",
            f"--advertise-address={network.HOST_ADDRESS}",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={self._serving.cert}",
            f"--tls-private-key-file={self._serving.key}",
            f"--client-ca-file={ca.cert}",
            f"--service-cluster-ip-range={network.SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={self._kubelet_client.cert}",
            f"--kubelet-client-key={self._kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--allow-privileged=true",
            # Keeps the `kubernetes` Endpoints at the advertised address (pods use it).
            "--endpoint-reconciler-type=lease",
            "--profiling=false",
            *self._audit_args(),
            *self.apiserver_flags,
        ]

    def _audit_args(self) -> list[str]:
        if self.audit_policy is None:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(self.audit_policy)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=0",
        ]

    def _start_kwok(self) -> Process:
        stages_dir = self.bins.kwok.parent / "stages"

        def load(file: str) -> dict[str, Any]:
            return dict(yaml.safe_load((stages_dir / file).read_text()))

        # Only Stage documents: a KwokConfiguration document would replace kwok's
        # defaults (parallelism 0 and the like); options go on the command line.
        docs: list[dict[str, Any]] = [
            load("node-initialize.yaml"),
            load("node-heartbeat-with-lease.yaml"),
            *pod_stages(load("pod-ready.yaml")),
        ]
        config = self.workdir / "kwok.yaml"
        config.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return self._spawn(
            "kwok",
            [
                self.bins.kwok,
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--cidr={self.pod_cidr}",
                "--node-lease-duration-seconds=40",
            ],
            lambda: True,
            "started",
        )

    # -- API helpers (plain HTTPS: no client library needed to bootstrap) ------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self._ca.cert))
            ctx.load_cert_chain(str(self._admin.cert), str(self._admin.key))
            self._ssl = ctx
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Call the API server as the admin; return the decoded JSON response."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self._context(), timeout=10) as r:
            return dict(json.loads(r.read() or b"{}"))

    def _get_text(self, path: str) -> str:
        req = urllib.request.Request(self.server + path)
        with urllib.request.urlopen(req, context=self._context(), timeout=5) as r:
            return str(r.read().decode())

    def _exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise
        return True

    @staticmethod
    def _component_healthy(port: int, path: str) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the component's self-signed serving cert
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=2) as r:
            return bool(r.read().decode().strip() == "ok")

    def _nodes_ready(self, names: Sequence[str]) -> bool:
        items = self.request("GET", "/api/v1/nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        }
        return all(name in ready for name in names)

    def add_node(self, node: FakeNode, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Register a fake node (KWOK makes it Ready); wait for Ready unless told not to."""
        try:
            self.request("POST", "/api/v1/nodes", node.manifest())
        except urllib.error.HTTPError as e:
            raise ComponentError(
                f"creating node {node.name} failed: {e.code} {e.read().decode()}"
            ) from e
        if node not in self.nodes:
            self.nodes.append(node)
        if wait:
            kwok = next(p for p in self.procs if p.name == "kwok")
            wait_for(
                kwok,
                lambda: self._nodes_ready([node.name]),
                what=f"node {node.name} is Ready",
                timeout=timeout,
            )

    # -- conveniences -----------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for clients: ``KUBECONFIG`` plus the built binaries on ``PATH``."""
        path = os.pathsep.join(
            [str(self.bins.kubectl.parent), str(self.bins.helm.parent), os.environ.get("PATH", "")]
        )
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; raise with stderr when it fails."""
        cmd = [str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def component_logs(self) -> dict[str, Path]:
        """Log file of each running component, by name."""
        return {p.name: p.log_file for p in self.procs}

    def check_alive(self) -> None:
        """Raise with the log tail if any component has died since start."""
        for proc in self.procs:
            if not proc.alive():
                raise proc.failure("died")


def start_cluster(
    nodes: Sequence[FakeNode] = DEFAULT_NODES, *, log: Log = _default_log, timeout: float = 120.0
) -> ControlPlane:
    """Build what is missing, then start a :class:`ControlPlane` (the caller stops it)."""
    bins = build.ensure_built()
    cp = ControlPlane(nodes=nodes, binaries=bins, log=log)
    with contextlib.ExitStack() as stack:
        stack.callback(cp.stop)
        cp.start(timeout=timeout)
        stack.pop_all()
    return cp
