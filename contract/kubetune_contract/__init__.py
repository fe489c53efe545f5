"""Everything the kubetune operator and its trainer agree on, in one place.

The operator (:mod:`kubetune`, in the operator image) and the trainer
(:mod:`kubetune_trainer`, in the trainer image) never import each other; both import this
package, and it imports neither (``make lint`` checks all three rules with import-linter).

=======================================  ===================================================
module                                   what both sides agree on
=======================================  ===================================================
:mod:`kubetune_contract.api`             the FineTuneJob schema (pydantic models, the only
                                         truth about it: the CRD is generated from them)
:mod:`~kubetune_contract.api.trainer_config`  the run config the operator renders and the
                                         trainer runs (``TrainerConfig``)
:mod:`kubetune_contract.pod`             environment variables, paths, ports and the user
                                         the pod gives the trainer
:mod:`kubetune_contract.exit_codes`      the trainer's exit codes and what the Job's
                                         ``podFailurePolicy`` does with each
:mod:`kubetune_contract.termination`     the run summary in the termination message
:mod:`kubetune_contract.metrics`         the trainer's Prometheus metric names
:mod:`kubetune_contract.api.status`      states, conditions, and which states are final
:mod:`kubetune_contract.curves`          the training history file (``metrics.jsonl``) and
                                         its plot
:mod:`kubetune_contract.evaluation`      the evaluation records, report files and chart
:mod:`kubetune_contract.data`            the dataset quality rules and code extraction that
                                         ``kubetune data`` and the trainer both apply
=======================================  ===================================================

Light by design: pydantic, PyYAML and numpy only, so the operator image stays free of the
training stack.
"""
