"""A real Kubernetes node on this machine, joined to a :class:`~devenv.cluster.ControlPlane`.

Why: KWOK's fake nodes only pretend to run pods. The end-to-end tests and the dev
cluster need pods that really run in containers, from the project's images, with
cgroup limits, a read-only root filesystem, probes, the pod network, cluster DNS,
``kubectl logs`` and exit codes, so that the first image, RBAC-in-a-pod or OOM problem
shows up here and not in a user's cluster.

What runs (every binary built from the Go module proxy by :mod:`devenv.build`, except
runc and the CNI plugins, which are Debian packages):

* a network namespace with a veth pair to the host (:mod:`devenv.network`): the node's
  interfaces, routes and iptables rules change nothing of the host's;
* containerd 2 with runc (:mod:`devenv.containerd`), its image store in the cache, where
  :mod:`devenv.images` puts the project's images;
* Debian's CNI ``bridge`` and ``host-local`` plugins: pods get addresses on a bridge and
  reach each other, the node, the host and Services, and nothing beyond the machine;
* the kubelet (in the namespace) with the settings this VM needs: cgroup v1 accepted
  (``failCgroupV1: false``), cgroupfs under a cgroup root of its own, no OOM score
  change (no CAP_SYS_RESOURCE), swap tolerated, image garbage collection off (the disk
  reports far more than is usable, which would make the kubelet delete the pause image);
* kube-proxy in iptables mode (in the namespace), so ClusterIPs work in pods;
* CoreDNS on the host's pod-network address, serving ``cluster.local`` from the API
  (the ``kube-dns`` Service, 198.19.0.10, points at it). It forwards nothing: names
  outside the cluster do not resolve, as nothing outside the machine may be reached.

The node registers as :data:`NODE_NAME` with the label :data:`REAL_NODE_LABEL`. Beside
KWOK's fake nodes (the test cluster) it also carries that key as a ``NoSchedule`` taint,
so only pods that ask for it (a toleration and a node selector) land there and the KWOK
tests' pods never do; as the only node (the dev cluster) it is untainted. It advertises
:data:`GPUS` ``nvidia.com/gpu`` as an extended resource on its status, so pods that
request GPUs schedule and run (on the CPU).

Everything the node creates lives in its work directory, a short runtime directory, its
cgroup root and its network namespace; :meth:`RealNode.stop` removes all of it, also
after a failed start. Requires root (network namespaces, cgroups, mounts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from devenv import build, images, network
from devenv.cluster import ControlPlane
from devenv.containerd import CNI_BIN_DIR, Containerd, unmount_below
from devenv.process import ComponentError, FileLock, Process, free_port, poll, wait_for

Log = Callable[[str], None]

NODE_NAME = "kubetune-node-0"
REAL_NODE_LABEL = "kubetune.io/real-node"
#: What a pod needs to land on the real node.
REAL_NODE_TOLERATION = {"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
REAL_NODE_SELECTOR = {REAL_NODE_LABEL: "true"}
GPU_RESOURCE = "nvidia.com/gpu"
GPUS = 4
CGROUP_ROOT = "kubetune-node"
#: Prefix of the node's runtime directory under /run (sockets need a short path).
RUNTIME_PREFIX = "kt-node-"
DNS_SERVICE = "kube-dns"


def _default_log(msg: str) -> None:
    print(f"[devenv node] {msg}", flush=True)


def cni_config() -> dict[str, Any]:
    """The pod network: a bridge with host-local addresses and a route to 198.18.0.0/15
    only (no default route: nothing beyond the machine), no masquerading."""
    return {
        "cniVersion": "1.0.0",
        "name": "kubetune",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [{"subnet": network.NODE_POD_SUBNET, "gateway": network.NODE_POD_GATEWAY}]
                    ],
                    "routes": [{"dst": str(network.ALLOWED_RANGE)}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    *,
    ca: Path,
    runtime_socket: Path,
    resolv_conf: Path,
    logs_dir: Path,
    plugins_dir: Path,
    tainted: bool,
) -> dict[str, Any]:
    """KubeletConfiguration for this VM (see the module docstring for the why of each)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.NODE_ADDRESS,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "oomScoreAdj": 0,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "clusterDNS": [network.DNS_SERVICE_IP],
        "clusterDomain": network.CLUSTER_DOMAIN,
        "resolvConf": str(resolv_conf),
        "podCIDR": network.NODE_POD_SUBNET,
        "podLogsDir": str(logs_dir),
        "volumePluginDir": str(plugins_dir),
        "registerWithTaints": (
            [{"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}] if tainted else []
        ),
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "maxPods": 110,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(kubeconfig: Path, node: str) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode, no conntrack sysctls (the VM refuses them)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": network.POD_CIDR,
        "hostnameOverride": node,
        "bindAddress": network.NODE_ADDRESS,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


def corefile(kubeconfig: Path, ready_port: int) -> str:
    """CoreDNS: the cluster zone from the API on the host's pod-network address."""
    return f"""\
{network.CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {network.HOST_ADDRESS}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {network.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} kubetune-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""


def dns_objects() -> list[dict[str, Any]]:
    """The ``kube-dns`` Service (the kubelet's clusterDNS) and its endpoints: CoreDNS,
    which runs on the host and is therefore not selected by labels."""
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DNS_SERVICE, "namespace": "kube-system"},
            "spec": {"clusterIP": network.DNS_SERVICE_IP, "ports": ports},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{DNS_SERVICE}-host",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": DNS_SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "devenv.kubetune.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [network.HOST_ADDRESS], "conditions": {"ready": True}}],
            "ports": ports,
        },
    ]


def _cgroup_hierarchies() -> list[Path]:
    """Mount points of the cgroup v1 hierarchies (and the v2 one, if mounted)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                points.append(Path(fields[4]))
    return points


def _remove_cgroup_tree(path: Path) -> None:
    """rmdir a cgroup and its children, deepest first (their processes are gone)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


class RealNode:
    """containerd + kubelet + kube-proxy + CoreDNS: a node that really runs pods."""

    def __init__(
        self,
        cp: ControlPlane,
        workdir: Path,
        *,
        name: str = NODE_NAME,
        gpus: int = GPUS,
        tainted: bool = True,
        build_images: bool = True,
        log: Log = _default_log,
    ) -> None:
        self.cp = cp
        self.workdir = workdir
        self.name = name
        self.gpus = gpus
        self.tainted = tainted
        self.build_images = build_images
        self.log = log
        self.bins = build.node_binaries()
        self.net = network.NodeNetwork()
        #: One node per machine: its network namespace and addresses are fixed.
        self.lock = FileLock(build.cache_root() / "locks" / "node.lock", "the real node")
        # Unix sockets (containerd's, the shims') need a short path.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir="/run"))
        self.logs = workdir / "logs"
        self.containerd = Containerd(
            self.runtime_dir / "containerd",
            cni_conf_dir=workdir / "cni",
            exec_prefix=self.net.exec_prefix(),
            log_file=self.logs / "containerd.log",
        )
        self.procs: list[Process] = []
        self.kubelet_root = workdir / "kubelet"
        self.ready_seconds: float | None = None
        self.images: list[images.Built] = []

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start ---------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> RealNode:
        """Start every piece; return once the node is Ready and advertises its GPUs.

        A failure stops what started and raises with the failing component's log tail
        (and the node's conditions when it registered but never became Ready).
        """
        started = time.monotonic()
        try:
            self._start(started + timeout)
        except BaseException:
            self.log(f"start failed; logs kept in {self.logs}")
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        self.log(f"node {self.name} Ready in {self.ready_seconds:.1f}s")
        return self

    def _check_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise ComponentError("the real node needs root (network namespaces, cgroups, mounts)")
        missing = [str(p) for p in vars(self.bins).values() if not Path(p).is_file()]
        if missing:
            raise ComponentError(f"binaries missing: {missing}; run `python -m devenv build`")
        for plugin in ("bridge", "host-local", "portmap", "loopback"):
            if not (Path(CNI_BIN_DIR) / plugin).is_file():
                raise ComponentError(
                    f"CNI plugin {plugin!r} missing in {CNI_BIN_DIR}: apt-get install "
                    "containernetworking-plugins (.ci/install-system.sh does)"
                )
        for tool, package in (
            ("iptables", "iptables"),
            ("nsenter", "util-linux"),
            ("ip", "iproute2"),
        ):
            if shutil.which(tool) is None:
                raise ComponentError(f"{tool!r} missing: apt-get install {package}")

    def _spawn(self, name: str, args: list[str], *, in_netns: bool = True) -> Process:
        self.log(f"starting {name}")
        prefix = self.net.exec_prefix() if in_netns else []
        proc = Process(name, [*prefix, *args], self.logs / f"{name}.log")
        self.procs.append(proc)
        return proc

    def _start(self, deadline: float) -> None:
        self._check_prerequisites()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(timeout=600)  # before the network: a second node's is the same
        self.net.create()
        (self.workdir / "cni").mkdir(parents=True, exist_ok=True)
        (self.workdir / "cni" / "10-kubetune.conflist").write_text(json.dumps(cni_config()))
        self.containerd.start()  # holds the image store's lock: no other node runs now
        self.containerd.remove_containers()
        self._remove_leftovers()
        self.images = images.ensure_images(
            self.containerd, images=images.IMAGES if self.build_images else (), log=self.log
        )
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
        kubelet = self._start_kubelet()
        self._start_kube_proxy()
        self._start_coredns(deadline)
        try:
            wait_for(
                kubelet,
                self._ready,
                what=f"node {self.name} is Ready",
                timeout=max(1.0, deadline - time.monotonic()),
                interval=0.5,
            )
        except ComponentError as e:
            raise ComponentError(f"{e}\nnode condition Ready: {self._ready_condition()}") from None
        self._advertise_gpus()

    def _remove_leftovers(self) -> None:
        """What a run killed before its cleanup (SIGKILL, a crash) left: its runtime
        directory's mounts and its cgroups (their processes died with it)."""
        for stale in Path("/run").glob(f"{RUNTIME_PREFIX}*"):
            if stale != self.runtime_dir:
                unmount_below(stale)
                shutil.rmtree(stale, ignore_errors=True)
        for hierarchy in _cgroup_hierarchies():
            _remove_cgroup_tree(hierarchy / CGROUP_ROOT)

    def _start_kubelet(self, overrides: Mapping[str, Any] | None = None) -> Process:
        cfg_dir = self.workdir / "config"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        resolv = cfg_dir / "resolv.conf"
        resolv.write_text("")  # pods get the cluster DNS only, never the host's resolvers
        config = cfg_dir / "kubelet.yaml"
        config.write_text(
            yaml.safe_dump(
                kubelet_config(
                    ca=self.cp.ca_cert,
                    runtime_socket=self.containerd.socket,
                    resolv_conf=resolv,
                    logs_dir=self.workdir / "pod-logs",
                    plugins_dir=self.workdir / "volume-plugins",
                    tainted=self.tainted,
                )
                | dict(overrides or {})
            )
        )
        kubeconfig = self.cp.client_kubeconfig(
            f"kubelet-{self.name}",
            f"system:node:{self.name}",
            ("system:nodes",),
            server=self.cp.node_server,
        )
        return self._spawn(
            "kubelet",
            [
                str(self.bins.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={network.NODE_ADDRESS}",
                f"--node-labels={REAL_NODE_LABEL}=true",
                "--v=2",
            ],
        )

    def _start_kube_proxy(self) -> Process:
        kubeconfig = self.cp.client_kubeconfig(
            "kube-proxy", "system:kube-proxy", server=self.cp.node_server
        )
        config = self.workdir / "config" / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump(kube_proxy_config(kubeconfig, self.name)))
        return self._spawn("kube-proxy", [str(self.bins.kube_proxy), f"--config={config}", "--v=1"])

    def _start_coredns(self, deadline: float) -> Process:
        ready_port = free_port()
        path = self.workdir / "config" / "Corefile"
        path.write_text(corefile(self.cp.kubeconfig, ready_port))
        proc = self._spawn("coredns", [str(self.bins.coredns), f"-conf={path}"], in_netns=False)
        for obj in dns_objects():
            self.cp.kubectl("apply", "-f", "-", input=json.dumps(obj))

        def ready() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{ready_port}/ready", timeout=2) as r:
                return bool(r.status == 200)

        wait_for(
            proc,
            ready,
            what="CoreDNS /ready answers",
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.2,
        )
        return proc

    def _node(self) -> dict[str, Any] | None:
        try:
            return self.cp.request("GET", f"/api/v1/nodes/{self.name}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def _ready_condition(self) -> str:
        """The node's Ready condition in words (``not registered`` before the kubelet did)."""
        node = self._node()
        if node is None:
            return "not registered"
        for cond in node.get("status", {}).get("conditions", []):
            if cond["type"] == "Ready":
                return f"{cond['status']} ({cond.get('reason')}: {cond.get('message')})"
        return "no Ready condition yet"

    def _ready(self) -> bool:
        """True once Ready; a dead component raises at once with its log tail."""
        for proc in [*self.procs, *([self.containerd.proc] if self.containerd.proc else [])]:
            if not proc.alive():
                raise proc.failure("died while the node was starting")
        return self._ready_condition().startswith("True")

    def _advertise_gpus(self) -> None:
        """Extended resource ``nvidia.com/gpu`` on the node's status (kubelet keeps it)."""
        key = GPU_RESOURCE.replace("/", "~1")
        patch = [
            {"op": "add", "path": f"/status/capacity/{key}", "value": str(self.gpus)},
            {"op": "add", "path": f"/status/allocatable/{key}", "value": str(self.gpus)},
        ]
        self.cp.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            patch,
            content_type="application/json-patch+json",
        )
        poll(
            lambda: (
                (self._node() or {}).get("status", {}).get("allocatable", {}).get(GPU_RESOURCE)
                == str(self.gpus)
            ),
            what=f"node {self.name} advertises {self.gpus} {GPU_RESOURCE}",
            timeout=30,
        )

    # -- faults --------------------------------------------------------------------------

    def stop_kubelet(self) -> None:
        """Stop only the kubelet: containers keep running (containerd does), the node
        stops reporting and the control plane marks it NotReady after its grace period."""
        kubelet = next(p for p in self.procs if p.name == "kubelet")
        kubelet.stop()
        self.procs.remove(kubelet)

    def start_kubelet(
        self, overrides: Mapping[str, Any] | None = None, timeout: float = 60
    ) -> None:
        """Start the kubelet again, with ``overrides`` of its configuration (e.g. eviction
        thresholds); return once the node is Ready and advertises its GPUs again."""
        kubelet = self._start_kubelet(overrides)
        wait_for(kubelet, self._ready, what=f"node {self.name} is Ready", timeout=timeout)
        self._advertise_gpus()

    def restart_kubelet(self, overrides: Mapping[str, Any] | None = None) -> None:
        """:meth:`stop_kubelet`, then :meth:`start_kubelet` with ``overrides``."""
        self.stop_kubelet()
        self.start_kubelet(overrides)

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component and remove everything the node created on the host."""
        for proc in reversed(self.procs):
            if proc.name == "kubelet":
                proc.stop()
        if self.containerd.proc is not None:
            self.containerd.remove_containers()
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        self.containerd.stop()
        unmount_below(self.kubelet_root)
        for hierarchy in _cgroup_hierarchies():
            _remove_cgroup_tree(hierarchy / CGROUP_ROOT)
        self.net.destroy()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            self.cp.request("DELETE", f"/api/v1/nodes/{self.name}")
        self.lock.release()

    # -- conveniences --------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise with the log tail if a component of the node died."""
        for proc in [*self.procs, *([self.containerd.proc] if self.containerd.proc else [])]:
            if not proc.alive():
                raise proc.failure("died")

    def component_logs(self) -> dict[str, Path]:
        """Log file of each component, by name."""
        return {"containerd": self.containerd.log_file, **{p.name: p.log_file for p in self.procs}}
