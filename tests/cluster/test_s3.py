"""The S3 fixture is a real server: boto3 round-trips objects and credentials matter."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from devenv.s3 import S3Server

pytestmark = pytest.mark.s3


def test_put_list_get_delete_round_trip(s3: S3Server) -> None:
    c = s3.client()
    body = b"\x00kubetune adapter bytes\xff" * 1000
    c.put_object(Bucket=s3.bucket, Key="runs/demo/adapter.safetensors", Body=body)
    c.put_object(Bucket=s3.bucket, Key="runs/demo/manifest.json", Body=b"{}")
    listed = c.list_objects_v2(Bucket=s3.bucket, Prefix="runs/demo/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        "runs/demo/adapter.safetensors",
        "runs/demo/manifest.json",
    ]
    got = c.get_object(Bucket=s3.bucket, Key="runs/demo/adapter.safetensors")
    assert got["Body"].read() == body
    c.delete_object(Bucket=s3.bucket, Key="runs/demo/adapter.safetensors")
    c.delete_object(Bucket=s3.bucket, Key="runs/demo/manifest.json")
    assert c.list_objects_v2(Bucket=s3.bucket, Prefix="runs/demo/").get("KeyCount") == 0


def test_buckets_exist_and_wrong_credentials_are_refused(s3: S3Server) -> None:
    names = {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
    assert {"kubetune", "kubetune-output"} <= names
    intruder = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key="not-the-secret",
        region_name=s3.region,
    )
    with pytest.raises(ClientError) as err:
        intruder.list_objects_v2(Bucket=s3.bucket)
    assert err.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}


def test_server_listens_on_loopback_only(s3: S3Server) -> None:
    assert s3.endpoint.startswith("http://127.0.0.1:")
