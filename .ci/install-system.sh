#!/usr/bin/env bash
# System dependencies of the test suite, then the control-plane binaries.
#
# - Debian packages: prometheus (prometheus + promtool for the metrics and alert tests);
#   for the images and the real node: mmdebstrap (the Debian base image), podman (builds
#   the Dockerfiles), runc (the container runtime), containernetworking-plugins (the pod
#   network's bridge), iptables and conntrack (kube-proxy), iproute2 (the node's network
#   namespace), gcc (the pod sandbox's static pause binary).
# - Go >= 1.26 must already be on PATH: kube-apiserver, kube-controller-manager,
#   kube-scheduler, kubectl, etcd, kwok and helm are compiled from the Go module proxy and
#   cached under ${XDG_CACHE_HOME:-~/.cache}/kubetune/bin (python -m devenv build), and so
#   are the real node's kubelet, kube-proxy, containerd and CoreDNS, fake-gcs-server and
#   Argo CD's health evaluation (argo-cd v3.6.1 wants Go 1.27: the go command fetches
#   that toolchain through the module proxy).
# - Node.js with npm (>= 18) must be on PATH: Azurite (the Azure Blob emulator) is
#   npm-installed into the same cache; the MLflow server gets a virtual environment there.
#
# Idempotent: installed packages and cached binaries are kept, so a second run takes
# about a second. Quiet: only what it does and errors are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    prometheus
    mmdebstrap podman runc containernetworking-plugins iptables conntrack iproute2 gcc libc6-dev
)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "install-system: apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
else
    echo "install-system: Debian packages present (${packages[*]})"
fi

if ! command -v go >/dev/null; then
    echo "install-system: the Go toolchain (>= 1.26) is required to build the control plane" >&2
    exit 1
fi

if ! command -v npm >/dev/null; then
    echo "install-system: Node.js with npm is required for Azurite (apt-get install nodejs npm)" >&2
    exit 1
fi

python="${PYTHON:-.venv/bin/python}"
if [ ! -x "$python" ]; then python=python3; fi
"$python" -m devenv build
# Kueue and the monitoring CRDs (ServiceMonitor/PodMonitor) for the chart and Kueue tests.
"$python" -m tests.cluster.external
