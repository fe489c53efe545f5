"""render_children: the ConfigMap, Job, pod template and Service of a FineTuneJob."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetune.render import names
from kubetune.render.children import Children, render_children
from kubetune.render.job import CONFIG_DIGEST_ANNOTATION, TEMPLATE_HASH_ANNOTATION
from kubetune.render.labels import JOB_LABEL, KUEUE_QUEUE_LABEL
from kubetune.render.options import RenderOptions
from kubetune.render.pod import pvc_claims
from kubetune_contract import exit_codes
from kubetune_contract.api import TrainerConfig, parse_finetunejob
from tests.cases.manifests import DELETE, merge, valid_manifest

OPTIONS = RenderOptions(trainer_image="registry.example/trainer:1", grace_period_seconds=900)


def render(spec_patch: dict[str, Any] | None = None, **options: Any) -> Children:
    manifest = merge(valid_manifest("llama"), {"spec": spec_patch or {}})
    manifest["metadata"] |= {"namespace": "ml", "uid": "uid-1"}
    opts = RenderOptions(**{**OPTIONS.__dict__, **options})
    return render_children(parse_finetunejob(manifest), opts)


def pod_spec(children: Children) -> dict[str, Any]:
    spec: dict[str, Any] = children.batch_job["spec"]["template"]["spec"]
    return spec


def container(children: Children) -> dict[str, Any]:
    found: dict[str, Any] = pod_spec(children)["containers"][0]
    return found


def env(children: Children) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(children)["env"]}


def test_names_are_deterministic_and_fit_dns_labels() -> None:
    children = render({"resources": {"nodes": 2, "gpus": 8}})
    assert children.batch_job["metadata"]["name"] == "llama"
    assert children.configmap["metadata"]["name"] == "llama-config"
    assert children.service is not None and children.service["metadata"]["name"] == "llama-nodes"
    longest = "x" * 52
    assert len(f"{names.job_name(longest)}-255") <= 63
    assert len(names.configmap_name(longest)) <= 63 and len(names.service_name(longest)) <= 63
    assert render() == render(), "rendering is pure"


def test_every_child_carries_the_recommended_labels() -> None:
    children = render({"resources": {"nodes": 2, "gpus": 8}})
    template = children.batch_job["spec"]["template"]
    for labels in [m["metadata"]["labels"] for m in children.all()] + [
        template["metadata"]["labels"]
    ]:
        assert labels[JOB_LABEL] == "llama"
        assert labels["app.kubernetes.io/name"] == "kubetune"
        assert labels["app.kubernetes.io/instance"] == "llama"
        assert labels["app.kubernetes.io/managed-by"] == "kubetune-operator"
        assert labels["app.kubernetes.io/part-of"] == "kubetune"
        assert "app.kubernetes.io/component" in labels
    assert [m["kind"] for m in children.all()] == ["ConfigMap", "Service", "Job"]


def test_configmap_holds_the_trainer_config_mounted_as_a_file() -> None:
    children = render()
    text = children.configmap["data"]["config.json"]
    config = TrainerConfig.model_validate(json.loads(text))
    assert (config.job.name, config.job.namespace, config.job.uid) == ("llama", "ml", "uid-1")
    volumes = {v["name"]: v for v in pod_spec(children)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "llama-config"
    mounts = {m["name"]: m for m in container(children)["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/kubetune", "readOnly": True}
    assert env(children)["KUBETUNE_CONFIG"] == "/etc/kubetune/config.json"


def test_single_gpu_job_runs_python_and_has_the_contract_environment() -> None:
    children = render({"resources": {"gpus": 1}})
    assert container(children)["command"] == ["python", "-m", "kubetune_trainer"]
    variables = env(children)
    assert variables["KUBETUNE_METRICS_PORT"] == "9090"
    assert variables["KUBETUNE_TERMINATION_PATH"] == "/dev/termination-log"
    assert variables["HF_HOME"].startswith("/cache")
    assert not any(name.startswith("PET_") for name in variables)
    assert children.service is None
    assert "completionMode" not in children.batch_job["spec"]


def test_single_node_multi_gpu_uses_torchrun_with_one_process_per_gpu() -> None:
    children = render({"resources": {"gpus": 4}})
    launcher = ["python", "-m", "kubetune_trainer.launch", "--standalone"]
    assert container(children)["command"] == launcher
    assert env(children)["PET_NPROC_PER_NODE"] == "4"
    assert env(children)["PET_NNODES"] == "1"


def test_multi_node_is_an_indexed_job_with_a_headless_service() -> None:
    children = render({"resources": {"nodes": 3, "gpus": 8}})
    spec = children.batch_job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert container(children)["command"] == ["python", "-m", "kubetune_trainer.launch"]
    variables = env(children)
    assert variables["PET_NNODES"] == "3" and variables["PET_NPROC_PER_NODE"] == "8"
    assert variables["PET_NODE_RANK"] == {
        "fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        }
    }
    assert variables["PET_MASTER_ADDR"] == "llama-0.llama-nodes"
    assert variables["PET_MASTER_PORT"] == "29500"
    assert pod_spec(children)["subdomain"] == "llama-nodes"
    service = children.service
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {
        JOB_LABEL: "llama",
        "app.kubernetes.io/component": "trainer",
    }
    template_labels = children.batch_job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    assert {"name": "rendezvous", "containerPort": 29500, "protocol": "TCP"} in container(children)[
        "ports"
    ]


def test_gpus_are_requested_and_limited_and_tolerated() -> None:
    children = render(
        {
            "resources": {
                "gpus": 8,
                "gpuType": "NVIDIA-H100-80GB-HBM3",
                "cpu": "32",
                "memory": "256Gi",
                "ephemeralStorage": "500Gi",
            }
        }
    )
    resources = container(children)["resources"]
    assert resources["requests"] == {
        "cpu": "32",
        "memory": "256Gi",
        "ephemeral-storage": "500Gi",
        "nvidia.com/gpu": "8",
    }
    assert resources["limits"] == {"memory": "256Gi", "nvidia.com/gpu": "8"}
    spec = pod_spec(children)
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def test_cpu_job_requests_no_gpu_and_tolerates_no_gpu_taint() -> None:
    children = render({"resources": {"gpus": 0}, "adapter": {"type": "lora"}})
    assert "nvidia.com/gpu" not in json.dumps(container(children)["resources"])
    assert "tolerations" not in pod_spec(children)
    assert "nodeSelector" not in pod_spec(children)


def test_user_scheduling_fields_pass_through() -> None:
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    children = render(
        {
            "resources": {"gpus": 1, "gpuType": "A100"},
            "scheduling": {
                "nodeSelector": {"pool": "train"},
                "tolerations": [{"key": "spot", "operator": "Exists"}],
                "affinity": affinity,
                "priorityClassName": "batch-low",
            },
            "serviceAccountName": "trainer",
        }
    )
    spec = pod_spec(children)
    assert spec["nodeSelector"] == {"pool": "train", "nvidia.com/gpu.product": "A100"}
    assert spec["tolerations"][0] == {"key": "spot", "operator": "Exists"}
    assert len(spec["tolerations"]) == 2
    assert spec["affinity"] == affinity
    assert spec["priorityClassName"] == "batch-low"
    assert spec["serviceAccountName"] == "trainer"


def test_pod_is_restricted_with_writable_scratch_and_memory_backed_shm() -> None:
    children = render({"resources": {"sharedMemory": "16Gi"}})
    spec = pod_spec(children)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    security = container(children)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    mounts = {m["mountPath"]: m["name"] for m in container(children)["volumeMounts"]}
    assert {"/tmp", "/cache", "/work", "/dev/shm"} <= mounts.keys()
    for path in ("/tmp", "/cache", "/work"):
        assert "emptyDir" in volumes[mounts[path]]
    assert container(children)["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container(children)["terminationMessagePath"] == "/dev/termination-log"


def test_grace_period_defaults_to_the_operator_and_is_overridable() -> None:
    assert pod_spec(render())["terminationGracePeriodSeconds"] == 900
    overridden = render({"terminationGracePeriodSeconds": 1800})
    assert pod_spec(overridden)["terminationGracePeriodSeconds"] == 1800


def test_image_defaults_to_the_operator_and_is_overridable() -> None:
    assert container(render())["image"] == "registry.example/trainer:1"
    assert container(render({"image": "mine:2"}))["image"] == "mine:2"


def test_credentials_are_secret_files_never_environment() -> None:
    children = render(
        {
            "model": {"credentialsSecret": "hf"},
            "output": {"credentialsSecret": "s3"},
            "tracking": {"backend": "wandb", "credentialsSecret": "wandb"},
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "x", "key": "t"}}},
                {"name": "MODE", "value": "fast"},
            ],
        }
    )
    assert "envFrom" not in container(children)
    volumes = {v["name"]: v for v in pod_spec(children)["volumes"]}
    mounts = {m["name"]: m for m in container(children)["volumeMounts"]}
    mounted = {
        volumes[name]["secret"]["secretName"]: mounts[name]
        for name in volumes
        if "secret" in volumes[name]
    }
    assert list(mounted) == ["hf", "s3", "wandb"]
    for secret, mount in mounted.items():
        assert mount["readOnly"] is True
        assert mount["mountPath"] == f"/var/run/secrets/kubetune/{secret}"
    assert all(v["secret"]["defaultMode"] == 0o440 for v in volumes.values() if "secret" in v)
    variables = env(children)
    dirs = [variables[f"KUBETUNE_CREDENTIALS_{i}"] for i in range(3)]
    assert dirs == [mounted[s]["mountPath"] for s in ("hf", "s3", "wandb")]
    # The author's own valueFrom stays theirs (the policy decides which Secrets it may name).
    assert variables["TOKEN"] == {"secretKeyRef": {"name": "x", "key": "t"}}
    assert variables["MODE"] == "fast"
    shared = render({"model": {"credentialsSecret": "s3"}, "output": {"credentialsSecret": "s3"}})
    assert [v["secret"]["secretName"] for v in pod_spec(shared)["volumes"] if "secret" in v] == [
        "s3"
    ]
    assert not any("secret" in v for v in pod_spec(render())["volumes"])


def test_the_reward_models_credentials_are_mounted_like_the_base_models() -> None:
    children = render(
        {
            "method": "grpo",
            "dataset": {"train": {"format": "promptCompletion"}},
            "grpo": {"numGenerations": 2},
            "model": {"credentialsSecret": "hf"},
            "reward": {"model": {"uri": "hf://org/reward", "credentialsSecret": "reward-hub"}},
        }
    )
    secrets = [v["secret"]["secretName"] for v in pod_spec(children)["volumes"] if "secret" in v]
    assert secrets == ["hf", "reward-hub"]
    assert env(children)["KUBETUNE_CREDENTIALS_1"] == "/var/run/secrets/kubetune/reward-hub"


def test_cpu_and_memory_are_requested_even_when_the_spec_leaves_them_unset() -> None:
    gpu = container(render({"model": {"uri": "hf://meta-llama/Llama-3.1-8B"}}))["resources"]
    # One process: 3 GiB runtime + one 5 GB shard, in whole GiB; the limit adds /dev/shm.
    assert gpu["requests"]["cpu"] == "500m" and gpu["requests"]["memory"] == "8Gi"
    assert gpu["limits"]["memory"] == "16Gi" and "cpu" not in gpu["limits"]
    eight = container(render({"resources": {"gpus": 8, "sharedMemory": "1Gi"}}))["resources"]
    assert eight["requests"]["cpu"] == "4"
    assert eight["requests"]["memory"] == "62Gi" and eight["limits"]["memory"] == "63Gi"
    tiny = render(
        {
            "model": {"uri": "builtin://tiny-llama"},
            "resources": {"gpus": 0},
            "adapter": {"type": "lora"},
        }
    )
    assert container(tiny)["resources"]["requests"] == {"cpu": "500m", "memory": "4Gi"}
    given = container(render({"resources": {"cpu": "6", "memory": "40Gi"}}))["resources"]
    assert given["requests"]["cpu"] == "6" and given["requests"]["memory"] == "40Gi"
    assert given["limits"]["memory"] == "40Gi"


def test_torch_threads_follow_the_cpu_request_unless_the_author_sets_them() -> None:
    # Unset, 500m per process: one thread each, not one per core of the node.
    assert env(render({"resources": {"gpus": 1}}))["OMP_NUM_THREADS"] == "1"
    assert env(render({"resources": {"gpus": 8}}))["OMP_NUM_THREADS"] == "1"
    # Requested cores are shared among the pod's processes, in whole cores.
    assert env(render({"resources": {"gpus": 4, "cpu": "18"}}))["OMP_NUM_THREADS"] == "4"
    assert env(render({"resources": {"gpus": 0, "cpu": "3500m"}}))["OMP_NUM_THREADS"] == "3"
    given = render({"env": [{"name": "OMP_NUM_THREADS", "value": "12"}]})
    names = [variable["name"] for variable in container(given)["env"]]
    assert names.count("OMP_NUM_THREADS") == 1 and env(given)["OMP_NUM_THREADS"] == "12"


def test_pvc_uris_mount_their_claims_and_only_the_output_is_writable() -> None:
    children = render(
        {
            "model": {"uri": "pvc://models/base"},
            "dataset": {"train": {"uri": "pvc://data/train.jsonl", "format": "messages"}},
            "output": {"uri": "pvc://results/run-1"},
        }
    )
    job = parse_finetunejob(
        merge(valid_manifest(), {"spec": {"output": {"uri": "pvc://results/run-1"}}})
    )
    assert pvc_claims(job) == {"results": True}
    volumes = {v["name"]: v for v in pod_spec(children)["volumes"]}
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in volumes.values()
        if "persistentVolumeClaim" in v
    }
    assert claims == {"data": True, "models": True, "results": False}
    mounts = {m["mountPath"]: m.get("readOnly") for m in container(children)["volumeMounts"]}
    assert mounts["/mnt/kubetune/pvc/results"] is False
    assert mounts["/mnt/kubetune/pvc/models"] is True
    assert env(children)["KUBETUNE_PVC_ROOT"] == "/mnt/kubetune/pvc"


def test_only_storage_uri_fields_mount_claims_not_text_that_looks_like_one() -> None:
    """A principle is free text: ``pvc://`` at its start must not mount a volume."""
    job = parse_finetunejob(
        merge(
            valid_manifest(),
            {
                "spec": {
                    "dataset": DELETE,
                    "selfCritique": {
                        "prompts": {"uri": "pvc://prompts/p.jsonl"},
                        "principles": ["pvc://payroll/ is off limits: never quote it."],
                    },
                    "training": {"ewc": {"referenceDataset": {"uri": "pvc://old/a.jsonl"}}},
                    "output": {"uri": "pvc://prompts/out"},
                }
            },
        )
    )
    assert pvc_claims(job) == {"old": False, "prompts": True}


def test_claims_of_list_items_are_found_by_type() -> None:
    task = {"numLabels": 2}
    job = parse_finetunejob(
        merge(
            valid_manifest(),
            {
                "spec": {
                    "method": "multitask",
                    "dataset": DELETE,
                    "multitask": {
                        "tasks": [
                            {"name": "a", "dataset": {"uri": "pvc://tasks/a.jsonl"}, **task},
                            {"name": "b", "dataset": {"uri": "pvc://more/b.jsonl"}, **task},
                        ]
                    },
                }
            },
        )
    )
    assert pvc_claims(job) == {"more": False, "tasks": False}


def test_pod_failure_policy_maps_trainer_exit_codes_and_disruptions() -> None:
    rules = render().batch_job["spec"]["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert fail[0]["onExitCodes"] == {
        "containerName": "trainer",
        "operator": "In",
        "values": [exit_codes.INVALID_INPUT],
    }
    assert {"containerName": "trainer", "operator": "In", "values": [exit_codes.INTERRUPTED]} in [
        r.get("onExitCodes") for r in ignore
    ]
    assert [{"type": "DisruptionTarget", "status": "True"}] in [
        r.get("onPodConditions") for r in ignore
    ]


def test_job_lifecycle_fields_follow_the_spec() -> None:
    spec = render(
        {"backoffLimit": 7, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 60}
    ).batch_job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (7, 3600)
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["suspend"] is False
    defaults = render().batch_job["spec"]
    assert "activeDeadlineSeconds" not in defaults and "ttlSecondsAfterFinished" not in defaults


@pytest.mark.parametrize(
    ("patch", "suspended", "queue"),
    [
        ({}, False, None),
        ({"suspend": True}, True, None),
        ({"scheduling": {"queueName": "team-a"}}, True, "team-a"),
    ],
)
def test_suspend_and_kueue(patch: dict[str, Any], suspended: bool, queue: str | None) -> None:
    job = render(patch).batch_job
    assert job["spec"]["suspend"] is suspended
    assert job["metadata"]["labels"].get(KUEUE_QUEUE_LABEL) == queue


def digests(children: Children) -> tuple[str, str]:
    annotations = children.batch_job["metadata"]["annotations"]
    return annotations[TEMPLATE_HASH_ANNOTATION], annotations[CONFIG_DIGEST_ANNOTATION]


def test_job_records_digests_of_its_template_and_config() -> None:
    template, config = digests(render())
    assert digests(render()) == (template, config)
    assert template.startswith("sha256:") and config.startswith("sha256:")
    # training settings change the config only: a suspended Job gets a new ConfigMap
    new_template, new_config = digests(render({"training": {"learningRate": "1e-5"}}))
    assert new_template == template and new_config != config
    # the image changes the pod template (the Job must be re-created)
    assert digests(render({"image": "other:1"}))[0] != template
    # Job-level fields don't change the pod template
    assert digests(render({"backoffLimit": 9}))[0] == template


def test_operator_pod_annotations_reach_the_pods_only() -> None:
    children = render(pod_annotations={"karpenter.sh/do-not-disrupt": "true"})
    template = children.batch_job["spec"]["template"]
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert "karpenter.sh/do-not-disrupt" not in children.batch_job["metadata"]["annotations"]
    ports = container(render(metrics_port=9400))["ports"]
    assert ports[0] == {"name": "metrics", "containerPort": 9400, "protocol": "TCP"}
