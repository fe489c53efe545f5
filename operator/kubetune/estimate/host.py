"""CPU and host memory of one training pod: the requests of a job that leaves
``resources.cpu`` / ``resources.memory`` unset.

A pod without requests is scheduled as if it needed nothing and is the first evicted
under memory pressure; a GPU training pod is the worst candidate for either. So the
render always requests something, derived from the job:

* **CPU**: :data:`CPUS_PER_PROCESS` per training process (one per GPU: the process
  itself, its data loader workers and the tokenizer), :data:`CPU_JOB_CPUS` for a CPU job.
* **Memory**, per process (one per GPU, at least one): the Python, PyTorch and CUDA host
  runtime (:data:`RUNTIME_BYTES`) plus what loading the base model holds in host memory.
  On a GPU, transformers reads the safetensors one shard at a time and moves each to the
  device, so that is one shard: the model's weights in their stored dtype, at most
  :data:`SHARD_BYTES` (the shard size transformers writes by default). On CPU the whole
  training lives in host memory: ``kubetune estimate``'s training memory (weights,
  gradients, optimizer state, activations). The memory-backed ``/dev/shm``
  (``resources.sharedMemory``) counts against the pod's memory, so it is added once.

Models outside ``kubetune estimate``'s catalog (their shape is unknown without
downloading their config) count as one full shard. The memory limit equals the request
(:mod:`kubetune.render.pod`), so a job whose estimate is low is OOM-killed and says so:
set ``resources.memory`` for it.
"""

from __future__ import annotations

import math
import re

from kubetune.api.spec import FineTuneJobSpec
from kubetune.estimate.memory import GIB, compute_bytes, estimate_memory
from kubetune.estimate.shapes import CATALOG, ModelShape, catalog_key

CPUS_PER_PROCESS = 4
CPU_JOB_CPUS = 2
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


def quantity_bytes(quantity: str) -> int:
    """Bytes of a Kubernetes memory quantity (``"8Gi"``, ``"512M"``, ``"1e9"`` aside)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|[kMGTPE]i?)?", quantity)
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number, suffix = match.groups()
    if suffix == "m":  # millibytes: legal, and never meant
        return math.ceil(float(number) / 1000)
    return math.ceil(float(number) * _SUFFIXES[suffix or ""])


def processes(spec: FineTuneJobSpec) -> int:
    """Training processes per pod: one per GPU, one on CPU."""
    return max(spec.resources.gpus, 1)


def model_shape(spec: FineTuneJobSpec) -> ModelShape | None:
    """The base model's shape from the catalog; ``None`` when it isn't known offline."""
    key = catalog_key(spec.model.uri)
    return CATALOG[key] if key is not None else None


def cpu_request(spec: FineTuneJobSpec) -> str:
    """The CPU request of one pod of ``spec`` (see the module docstring)."""
    if spec.resources.gpus == 0:
        return str(CPU_JOB_CPUS)
    return str(CPUS_PER_PROCESS * processes(spec))


def host_memory_bytes(spec: FineTuneJobSpec, shape: ModelShape | None) -> int:
    """Host memory of one pod of ``spec`` on a model of ``shape`` (module docstring)."""
    shm = quantity_bytes(spec.resources.sharedMemory)
    if spec.resources.gpus == 0:
        if shape is None:
            return RUNTIME_BYTES + SHARD_BYTES + shm
        training = estimate_memory(shape, spec, include_overhead=False).total
        return RUNTIME_BYTES + training + shm
    loading = SHARD_BYTES
    if shape is not None:
        loading = min(SHARD_BYTES, shape.parameters * compute_bytes(spec))
    return processes(spec) * (RUNTIME_BYTES + loading) + shm


def memory_request(spec: FineTuneJobSpec) -> str:
    """The memory request of one pod of ``spec``, in whole GiB."""
    return f"{math.ceil(host_memory_bytes(spec, model_shape(spec)) / GIB)}Gi"
