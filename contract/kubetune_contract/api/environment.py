"""Which trainer environment variables a FineTuneJob author may set (``spec.env``).

Two sets, because they are refused for different reasons:

* **Operator-owned** names are rendered by the operator into every trainer pod (the
  ``KUBETUNE_*`` contract, ``HOME`` and the cache folders, torchrun's ``PET_*``). A
  ``spec.env`` entry with such a name would override the operator's value (user entries
  come after the operator's), so the CRD refuses it at ``kubectl apply`` for everyone.
* **Routing** names decide where the trainer sends credentials, which code it loads and
  which peers it trusts: hub and object-store endpoints and credentials, proxies and CA
  bundles, torchrun's rendezvous, ``HOME`` and cache folders, the dynamic loader
  (``LD_*``), the interpreter (``PYTHON*``, ``PATH``). ``HF_ENDPOINT`` alone would send
  the Hub token of ``model.credentialsSecret`` to a server of the author's choosing. They
  are refused by the platform policy (:mod:`kubetune_contract.api.policy`) unless the platform
  lists them in ``spec.env`` of its FineTuneJobPolicy.

The render (:mod:`kubetune.render.pod`) takes its fixed names from here, so the two can't
drift apart.
"""

from __future__ import annotations

#: Prefix of the trainer contract's variables (config path, work dir, ports, credentials).
KUBETUNE_PREFIX = "KUBETUNE_"
#: Prefix of torchrun's options as environment variables (``--nnodes`` -> ``PET_NNODES``).
TORCHRUN_PREFIX = "PET_"

#: Folders the operator points at the pod's writable emptyDirs (the root filesystem is
#: read-only): an override would send the trainer's writes to a read-only path, or caches
#: and tokens to a path the author chose.
HOME = "HOME"
XDG_CACHE_HOME = "XDG_CACHE_HOME"
HF_HOME = "HF_HOME"
TRITON_CACHE_DIR = "TRITON_CACHE_DIR"

#: PyTorch's CPU threads per process: rendered from the CPU request
#: (``kubetune.estimate.host.threads_per_process``) unless ``spec.env`` sets it, the one
#: default an author may override (a job on dedicated cores wants more threads).
OMP_NUM_THREADS = "OMP_NUM_THREADS"

OPERATOR_OWNED_PREFIXES: tuple[str, ...] = (KUBETUNE_PREFIX, TORCHRUN_PREFIX)
OPERATOR_OWNED_NAMES: tuple[str, ...] = (HOME, XDG_CACHE_HOME, HF_HOME, TRITON_CACHE_DIR)

ROUTING_PREFIXES: tuple[str, ...] = (
    "HF_",  # hub endpoint, token, token path, caches
    "HUGGING_FACE_",
    "AWS_",  # S3 endpoint, keys, profiles, web identity token files
    "GOOGLE_",  # GOOGLE_APPLICATION_CREDENTIALS and friends
    "CLOUDSDK_",
    "AZURE_",
    "TORCHELASTIC_",
    "XDG_",
    "LD_",  # LD_PRELOAD, LD_LIBRARY_PATH: code loaded into every process
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONUSERBASE
    TORCHRUN_PREFIX,
)
ROUTING_NAMES: tuple[str, ...] = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "HOME",
    "TMPDIR",
    "TORCH_HOME",
    "TRANSFORMERS_CACHE",
    "TRITON_CACHE_DIR",
    "PATH",
    "WANDB_BASE_URL",
    "WANDB_API_KEY",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
)


def operator_owned(name: str) -> bool:
    """Whether the operator sets ``name`` in every trainer pod (never the author's)."""
    return name in OPERATOR_OWNED_NAMES or name.startswith(OPERATOR_OWNED_PREFIXES)


def routing(name: str) -> bool:
    """Whether ``name`` steers credentials, code or peers (the platform must allow it)."""
    return name in ROUTING_NAMES or name.startswith(ROUTING_PREFIXES)


def allowed_by(name: str, patterns: list[str]) -> bool:
    """Whether a platform's allow list matches ``name``: exact names, or ``PREFIX*``."""
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in patterns
    )


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def cel_operator_owned(name: str) -> str:
    """CEL twin of :func:`operator_owned` for the string expression ``name``."""
    prefixes = " || ".join(f"{name}.startsWith('{p}')" for p in OPERATOR_OWNED_PREFIXES)
    return f"({name} in {_cel_list(OPERATOR_OWNED_NAMES)} || {prefixes})"


def cel_routing(name: str) -> str:
    """CEL twin of :func:`routing`."""
    prefixes = f"{_cel_list(ROUTING_PREFIXES)}.exists(p, {name}.startsWith(p))"
    return f"({name} in {_cel_list(ROUTING_NAMES)} || {prefixes})"


def cel_allowed_by(name: str, patterns: str) -> str:
    """CEL twin of :func:`allowed_by` (``patterns`` is a list-valued CEL expression)."""
    return (
        f"{patterns}.exists(a, a.endsWith('*') ? "
        f"{name}.startsWith(a.substring(0, a.size() - 1)) : {name} == a)"
    )


def describe_operator_owned() -> str:
    """The reserved names as a sentence fragment, for error messages and docs."""
    prefixes = " or ".join(OPERATOR_OWNED_PREFIXES)
    return f"names starting with {prefixes} and {', '.join(OPERATOR_OWNED_NAMES)}"
