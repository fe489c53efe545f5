"""``spec.evaluation``: the base model and the tuned model answer the same prompts, and
the answers are scored against references — did the fine-tune help?

- :mod:`.examples`: the prompts and references, read and checked before training;
- :mod:`.models`: the base model and the published result, loaded for inference;
- :mod:`.scoring`: per-example metrics and the reward-model judge;
- :mod:`.compare`: answering, scoring and comparing (the per-example records);
- :mod:`.report`: ``evaluation.md``, ``evaluation.png``, ``evaluation.jsonl``;
- :mod:`.stage`: the job's stage after publishing, whose failure never fails the job;
- :mod:`.local`: ``kubetune eval FILE --adapter URI`` on a result published earlier.

What needs no model (means, gate, headline, chart) is in :mod:`kubetune_contract.evaluation`.
"""
