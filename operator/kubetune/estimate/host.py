"""CPU and host memory of one training pod: the requests of a job that leaves
``resources.cpu`` / ``resources.memory`` unset.

A pod without requests is scheduled as if it needed nothing and is the first evicted
under memory pressure; a GPU training pod is the worst candidate for either. So the
render always requests something, derived from the job:

* **CPU**: :data:`MILLICPUS_PER_PROCESS` per training process (one per GPU, one on CPU).
  A floor, not a reservation: enough to be scheduled on any node and to get a fair share
  when the node is busy (the kernel weighs CPU by requests), while CPU is never limited,
  so data loader workers use idle cores. A platform that dedicates cores to data loading
  sets ``resources.cpu`` (4-8 per GPU is common).
* **Threads**: PyTorch's CPU thread pools follow the request
  (:func:`threads_per_process`, rendered as ``OMP_NUM_THREADS``). Left alone, every
  process starts one thread per core of the *node*, and the processes of several pods
  on one node oversubscribe it: two quickstart trainers side by side on two cores took
  40 s with PyTorch's default against 13 s with one thread each, while one alone trains
  about as fast with one thread as with two (torchrun sets one for the same reason). A
  CPU job that should use more cores requests them with ``resources.cpu``, or sets
  ``OMP_NUM_THREADS`` in ``spec.env``.
* **Memory**, per process: the Python, PyTorch and CUDA host runtime
  (:data:`RUNTIME_BYTES`) plus what loading the base model holds in host memory. On a
  GPU, transformers reads the safetensors one shard at a time and moves each to the
  device, so that is one shard: the model's weights in their stored dtype, at most
  :data:`SHARD_BYTES` (the shard size transformers writes by default). On CPU the whole
  training lives in host memory: ``kubetune estimate``'s training memory (weights,
  gradients, optimizer state, activations). The memory-backed ``/dev/shm``
  (``resources.sharedMemory``) counts against the pod's memory but is mostly empty, so
  it is added to the limit (:func:`memory_limit`), not to the request.

Models outside ``kubetune estimate``'s catalog (their shape is unknown without
downloading their config) count as one full shard. A job whose estimate is low is
OOM-killed at its limit and says so (reason ``OOMKilled``): set ``resources.memory``.
"""

from __future__ import annotations

import math
import re

from kubetune.estimate.memory import GIB, compute_bytes, estimate_memory
from kubetune.estimate.shapes import CATALOG, ModelShape, catalog_key
from kubetune_contract.api.spec import FineTuneJobSpec

MILLICPUS_PER_PROCESS = 500
RUNTIME_BYTES = 3 * GIB
SHARD_BYTES = 5 * 10**9

_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def _quantity(quantity: str, kind: str) -> float:
    """The value of a Kubernetes quantity (``"8Gi"``, ``"500m"``; ``"1e9"`` aside)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|[kMGTPE]i?)?", quantity)
    if match is None:
        raise ValueError(f"not a {kind} quantity: {quantity!r}")
    number, suffix = match.groups()
    if suffix == "m":  # millicores; for memory millibytes: legal, and never meant
        return float(number) / 1000
    return float(number) * _SUFFIXES[suffix or ""]


def quantity_bytes(quantity: str) -> int:
    """Bytes of a Kubernetes memory quantity, rounded up."""
    return math.ceil(_quantity(quantity, "memory"))


def quantity_millicpus(quantity: str) -> int:
    """Millicores of a Kubernetes CPU quantity (``"500m"``, ``"1.5"``, ``"8"``), rounded up."""
    return math.ceil(round(_quantity(quantity, "CPU") * 1000, 6))


def processes(spec: FineTuneJobSpec) -> int:
    """Training processes per pod: one per GPU, one on CPU."""
    return max(spec.resources.gpus, 1)


def model_shape(spec: FineTuneJobSpec) -> ModelShape | None:
    """The base model's shape from the catalog; ``None`` when it isn't known offline."""
    key = catalog_key(spec.model.uri)
    return CATALOG[key] if key is not None else None


def cpu_request(spec: FineTuneJobSpec) -> str:
    """The CPU request of one pod of ``spec`` (see the module docstring)."""
    millis = MILLICPUS_PER_PROCESS * processes(spec)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def threads_per_process(spec: FineTuneJobSpec) -> int:
    """PyTorch CPU threads for each training process: the pod's CPU request (given or
    derived) shared among its processes in whole cores, at least one."""
    millicpus = quantity_millicpus(spec.resources.cpu or cpu_request(spec))
    return max(1, millicpus // (1000 * processes(spec)))


def host_memory_bytes(spec: FineTuneJobSpec, shape: ModelShape | None) -> int:
    """Host memory one pod of ``spec`` on a model of ``shape`` uses (module docstring),
    ``/dev/shm`` aside."""
    if spec.resources.gpus == 0:
        if shape is None:
            return RUNTIME_BYTES + SHARD_BYTES
        return RUNTIME_BYTES + estimate_memory(shape, spec, include_overhead=False).total
    loading = SHARD_BYTES
    if shape is not None:
        loading = min(SHARD_BYTES, shape.parameters * compute_bytes(spec))
    return processes(spec) * (RUNTIME_BYTES + loading)


def _gib(bytes_: int) -> str:
    return f"{math.ceil(bytes_ / GIB)}Gi"


def memory_request(spec: FineTuneJobSpec) -> str:
    """The memory request of one pod of ``spec``, in whole GiB."""
    return _gib(host_memory_bytes(spec, model_shape(spec)))


def memory_limit(spec: FineTuneJobSpec) -> str:
    """The memory limit of a pod whose request is derived: the request plus a full
    ``/dev/shm``, so that filling it can't kill the trainer below its expected use."""
    used = host_memory_bytes(spec, model_shape(spec))
    return _gib(used + quantity_bytes(spec.resources.sharedMemory))
