"""The pod network of the dev/test cluster: addresses and the real node's network namespace.

Why a network namespace: the real node (containerd, kubelet, kube-proxy, the pods'
bridge) needs interfaces, routes and iptables rules of its own. Inside a namespace they
change nothing of the host's network, and deleting the namespace removes all of them,
even after a crash. The host sees the node through one veth pair.

Addresses come from 198.18.0.0/15 only (reserved for network benchmarking, never
routed): this machine flags traffic to the private ranges, and nothing may leave it.

======================  ===================  ==========================================
what                    address              where
======================  ===================  ==========================================
the host, seen by pods  198.18.0.1           host end of the veth (API server, S3, DNS)
the node                198.18.0.2           node end of the veth (kubelet, InternalIP)
pods on the node        198.18.16.0/24       the node's bridge ``kt0`` (gateway .1)
KWOK's fake pods        198.18.128.0/17      never carry traffic
Services                198.19.0.0/16        ``kubernetes`` .0.1, cluster DNS .0.10
======================  ===================  ==========================================

Neither the node's namespace nor the pods get a default route: a route covers
198.18.0.0/15 and nothing else, so a pod can reach the node, the host, other pods and
Services, and nothing beyond the machine. The bridge does no masquerading.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from collections.abc import Sequence
from typing import Final

from devenv.process import ComponentError

ALLOWED_RANGE: Final = ipaddress.ip_network("198.18.0.0/15")
HOST_ADDRESS: Final = "198.18.0.1"
NODE_ADDRESS: Final = "198.18.0.2"
LINK_PREFIX: Final = 24
POD_CIDR: Final = "198.18.16.0/20"
NODE_POD_SUBNET: Final = "198.18.16.0/24"
NODE_POD_GATEWAY: Final = "198.18.16.1"
KWOK_POD_CIDR: Final = "198.18.128.0/17"
SERVICE_CIDR: Final = "198.19.0.0/16"
KUBERNETES_SERVICE_IP: Final = "198.19.0.1"
DNS_SERVICE_IP: Final = "198.19.0.10"
CLUSTER_DOMAIN: Final = "cluster.local"
BRIDGE: Final = "kt0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ComponentError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def netns_exists(name: str) -> bool:
    """True when the named network namespace exists (``ip netns list``)."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    return any(line.split(" ")[0] == name for line in listed)


class NodeNetwork:
    """The node's network namespace, the veth pair to the host, and their routes."""

    def __init__(self, netns: str = "kubetune-node", host_link: str = "kt-host") -> None:
        self.netns = netns
        self.host_link = host_link

    def exec_prefix(self) -> list[str]:
        """Prefix that runs a command inside the node's network namespace.

        ``nsenter --net`` rather than ``ip netns exec``: the latter also gives the command
        a mount namespace of its own, and the kubelet's volume mounts must be visible to
        containerd and runc.
        """
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's namespace."""
        proc = subprocess.run(
            [*self.exec_prefix(), *args], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise ComponentError(
                f"`{' '.join(args)}` in netns {self.netns} failed: {proc.stderr.strip()}"
            )
        return proc

    def create(self) -> None:
        """Create the namespace and the veth pair, address both ends, add the routes.

        A namespace left by a crashed run is removed first (it holds nothing worth
        keeping: its processes died with that run).
        """
        self.destroy()
        _ip("netns", "add", self.netns)
        _ip(
            "link",
            "add",
            self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.netns,
        )
        _ip("addr", "add", f"{HOST_ADDRESS}/{LINK_PREFIX}", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "addr", "add", f"{NODE_ADDRESS}/{LINK_PREFIX}", "dev", "eth0")
        self.run("ip", "link", "set", "eth0", "up")
        self.run("ip", "route", "add", str(ALLOWED_RANGE), "via", HOST_ADDRESS)
        # The host reaches pods (an operator process on the host scrapes their metrics).
        _ip("route", "add", POD_CIDR, "via", NODE_ADDRESS, "dev", self.host_link)
        for key, value in self.sysctls():
            self.run("sysctl", "-q", "-w", f"{key}={value}")

    @staticmethod
    def sysctls() -> Sequence[tuple[str, str]]:
        """Per-namespace settings: forward between the bridge and the veth, and let
        iptables see bridged traffic (a Service's reply from a pod on the same bridge
        must be un-NATed)."""
        return (
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
        )

    def destroy(self) -> None:
        """Delete the namespace (its interfaces, routes and iptables rules go with it)."""
        if netns_exists(self.netns):
            _ip("netns", "delete", self.netns)
        with contextlib.suppress(ComponentError):
            if _ip("link", "show", self.host_link, check=False).returncode == 0:
                _ip("link", "delete", self.host_link)
