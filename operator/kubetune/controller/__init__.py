"""The kopf controller: handlers (thin), status derivation and progress (pure), settings.

Two kinds of job meet here, so the names keep them apart: ``finetunejob`` is always the
FineTuneJob (the parsed resource, ``Snapshot.finetunejob``) and ``batch_job`` always the
``batch/v1`` Job the operator made for it (``JobView``, ``Observation.batch_job``,
``Children.batch_job``). In prose, "job" is the FineTuneJob and "Job" the batch Job.
"""
