"""The trainer's credential lookup (files from the mounted Secrets, then the environment)
and the options it hands the storage and Hub clients. The S3 client itself is exercised
with mounted files against the real S3 server in tests/trainer/test_storage_s3.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetune_contract.pod import CREDENTIALS_ENV_PREFIX
from kubetune_trainer import credentials, storage
from kubetune_trainer.sources import hub_token


def mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *secrets: dict[str, str]) -> None:
    """Write each Secret as a folder of key files and point KUBETUNE_CREDENTIALS_<n> at it."""
    for index, data in enumerate(secrets):
        folder = tmp_path / f"secret-{index}"
        folder.mkdir()
        for key, value in data.items():
            (folder / key).write_text(value)
        monkeypatch.setenv(f"{CREDENTIALS_ENV_PREFIX}{index}", str(folder))


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_files_in_listed_order_later_wins_environment_wins_over_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount(tmp_path, monkeypatch, {"HF_TOKEN": "hf_first\n"}, {"HF_TOKEN": "hf_second\n"})
    assert [p.name for p in credentials.directories()] == ["secret-0", "secret-1"]
    assert credentials.value("HF_TOKEN") == "hf_second"
    assert hub_token() == "hf_second"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert credentials.value("HF_TOKEN") == "hf_env"
    assert credentials.value("ABSENT") is None


def test_s3_options_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mount(
        tmp_path,
        monkeypatch,
        {"HF_TOKEN": "hf"},
        {
            "AWS_ACCESS_KEY_ID": "AKIA",
            "AWS_SECRET_ACCESS_KEY": "secret\n",
            "AWS_ENDPOINT_URL": "http://generic",
            "AWS_ENDPOINT_URL_S3": "http://s3-specific",
            "AWS_DEFAULT_REGION": "eu-west-1",
        },
    )
    options = storage.storage_options("s3")
    assert options["key"] == "AKIA" and options["secret"] == "secret"
    assert options["endpoint_url"] == "http://s3-specific"
    assert options["client_kwargs"] == {"region_name": "eu-west-1"}
    assert "token" not in options


def test_gcs_gets_the_key_file_path_and_azure_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount(
        tmp_path,
        monkeypatch,
        {"GOOGLE_APPLICATION_CREDENTIALS": '{"type": "service_account"}'},
        {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "key"},
    )
    token = storage.storage_options("gs")["token"]
    assert Path(token).read_text() == '{"type": "service_account"}'
    assert storage.storage_options("az") == {"account_name": "acct", "account_key": "key"}
    # A path in the environment is the standard form: the client reads it itself.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/elsewhere.json")
    assert "token" not in storage.storage_options("gs")


def test_nothing_mounted_leaves_the_clients_their_own_chain() -> None:
    assert credentials.directories() == []
    assert storage.storage_options("s3") == {"config_kwargs": {"retries": {"max_attempts": 1}}}
    assert storage.storage_options("gs") == {} and hub_token() is None
