"""Prometheus metrics of a trainer run, served by prometheus-client.

Served on ``$KUBETUNE_METRICS_PORT`` (default 9090; ``0`` disables the server, the
gauges still update). All gauges, updated at every logging step:

=====================================  ==============================================
``kubetune_trainer_step``              optimizer steps done
``kubetune_trainer_total_steps``       optimizer steps planned
``kubetune_trainer_epoch``             epochs done (fractional)
``kubetune_trainer_loss``              training loss of the last logging window
``kubetune_trainer_eval_loss``         loss on the validation data, last evaluation
``kubetune_trainer_learning_rate``     current learning rate
``kubetune_trainer_grad_norm``         gradient norm before clipping
``kubetune_trainer_tokens_per_second`` input tokens processed per second (this process)
``kubetune_trainer_samples_per_second`` examples processed per second (this process)
``kubetune_trainer_gpu_memory_bytes``  peak CUDA memory allocated (only with CUDA)
``kubetune_trainer_last_checkpoint_step`` step of the newest checkpoint in the store
``kubetune_trainer_resumes``           times this job resumed from a checkpoint
=====================================  ==============================================

Gauges of the evaluation after training (``spec.evaluation``), present once set:

===================================================  ======================================
``kubetune_trainer_evaluation_answers{model}``       prompts answered so far (base, tuned)
``kubetune_trainer_evaluation_score{metric,model}``  a metric's mean over the prompts
``kubetune_trainer_evaluation_gate_passed{metric}``  1 when the gated metric met its
                                                     threshold, 0 when not
===================================================  ======================================

Counters (this process's lifetime):

================================================  ===================================
``kubetune_trainer_checkpoints_total``            checkpoints uploaded (marker written)
``kubetune_trainer_checkpoint_upload_failures_total``  uploads that failed after retries
================================================  ===================================

A private registry keeps in-process runs (``kubetune run``, tests) from colliding with
the global default registry or with each other.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from kubetune_contract.metrics import COUNTERS, DESCRIPTIONS, LABELLED, PREFIX
from kubetune_contract.pod import METRICS_PORT, METRICS_PORT_ENV

log = logging.getLogger(__name__)


class TrainerMetrics:
    """The gauges, and the HTTP server that exposes them when a port is set."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = {
            name: Gauge(PREFIX + name, help_text, registry=self.registry)
            for name, help_text in DESCRIPTIONS.items()
        }
        self.counters = {
            name: Counter(PREFIX + name, help_text, registry=self.registry)
            for name, help_text in COUNTERS.items()
        }
        self.labelled = {
            name: Gauge(PREFIX + name, help_text, labels, registry=self.registry)
            for name, (help_text, labels) in LABELLED.items()
        }

    def set(self, name: str, value: float) -> None:
        self.gauges[name].set(value)

    def set_labelled(self, name: str, labels: dict[str, str], value: float) -> None:
        self.labelled[name].labels(**labels).set(value)

    def inc(self, name: str) -> None:
        self.counters[name].inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A gauge's value, or a counter's total (``name`` without ``_total``)."""
        sample = name + "_total" if name in self.counters else name
        return float(self.registry.get_sample_value(PREFIX + sample, labels) or 0.0)

    def serve(self, port: int | None = None) -> int:
        """Start the endpoint (port from the environment by default); return the port, 0 if off.

        Only local rank 0 serves: torchrun starts one process per GPU in the same pod, and
        they would all try to bind the one port the operator scrapes.
        """
        if port is None:
            port = int(os.environ.get(METRICS_PORT_ENV, METRICS_PORT))
        if port == 0 or int(os.environ.get("LOCAL_RANK", "0")) != 0:
            return 0
        start_http_server(port, registry=self.registry)
        log.info("metrics on :%d/metrics", port)
        return port
