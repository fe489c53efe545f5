"""``kubetune estimate``: GPU memory, time and cost of a FineTuneJob before anything runs.

Pure arithmetic over a model's shape (:mod:`.shapes`), the job's adapter, batch and
sequence length (:mod:`.memory`), and GPU throughput (:mod:`.hardware`). The formulas
are the usual back-of-the-envelope ones (weights + gradients + optimizer states +
activations + logits), stated in each function so a reader can check them.
"""
