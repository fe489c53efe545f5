"""render_trainer_config: defaults resolved, digest stable, local file URIs resolved."""

from __future__ import annotations

import json
from pathlib import Path

from kubetune.render.trainer_config import render_trainer_config, spec_digest, trainer_config_json
from kubetune_contract.api import TrainerConfig, parse_finetunejob
from tests.cases.manifests import DELETE, merge, valid_manifest


def test_config_carries_identity_defaults_and_digest() -> None:
    job = parse_finetunejob(
        merge(valid_manifest("llama"), {"metadata": {"namespace": "ml", "uid": "u-1"}})
    )
    config = render_trainer_config(job)
    assert (config.job.name, config.job.namespace, config.job.uid) == ("llama", "ml", "u-1")
    assert config.spec.training.seed == 42
    assert config.specDigest == spec_digest(job.spec)
    assert config.specDigest.startswith("sha256:") and len(config.specDigest) == 71


def test_digest_changes_with_the_spec_and_not_with_key_order() -> None:
    one = parse_finetunejob(valid_manifest())
    reordered = valid_manifest()
    reordered["spec"] = dict(reversed(list(reordered["spec"].items())))
    other = parse_finetunejob(merge(valid_manifest(), {"spec": {"training": {"seed": 7}}}))
    assert spec_digest(one.spec) == spec_digest(parse_finetunejob(reordered).spec)
    assert spec_digest(one.spec) != spec_digest(other.spec)


def test_json_round_trips_through_the_trainer_model() -> None:
    config = render_trainer_config(parse_finetunejob(valid_manifest()))
    text = trainer_config_json(config)
    assert TrainerConfig.model_validate(json.loads(text)) == config


def test_relative_file_uris_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    manifest = merge(
        valid_manifest(),
        {
            "spec": {
                "dataset": {"train": {"uri": "file://data/train.jsonl"}},
                "output": {"uri": "file://../out/run"},
                "model": {"uri": "file:///models/base"},
            }
        },
    )
    config = render_trainer_config(parse_finetunejob(manifest), base_dir=tmp_path)
    assert config.spec.dataset is not None
    assert config.spec.dataset.train.uri == f"file://{tmp_path}/data/train.jsonl"
    assert config.spec.output.uri == f"file://{tmp_path.parent}/out/run"
    assert config.spec.model.uri == "file:///models/base"


def test_only_storage_uris_are_resolved_not_text_that_looks_like_one(tmp_path: Path) -> None:
    principle = "file://notes is where the answer must never point"
    manifest = merge(
        valid_manifest(),
        {
            "spec": {
                "dataset": DELETE,
                "selfCritique": {"prompts": {"uri": "file://p.jsonl"}, "principles": [principle]},
            }
        },
    )
    job = parse_finetunejob(manifest)
    config = render_trainer_config(job, base_dir=tmp_path)
    assert config.spec.selfCritique is not None
    assert config.spec.selfCritique.prompts.uri == f"file://{tmp_path}/p.jsonl"
    assert config.spec.selfCritique.principles == [principle]
    assert job.spec.selfCritique is not None
    assert job.spec.selfCritique.prompts.uri == "file://p.jsonl", "the job itself is unchanged"
