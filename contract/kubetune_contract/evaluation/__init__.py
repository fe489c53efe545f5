"""Base-against-tuned evaluation: what the trainer, ``kubetune eval`` and ``kubetune plot``
share.

The trainer generates and scores (:mod:`kubetune_trainer.evaluation`); everything that
works on the scores alone lives here, without torch, so that the command line can read a
published report: the per-example records (:mod:`.records`), their means, the gate and
the headline, and the base-against-tuned bar chart (:mod:`.chart`).
"""
