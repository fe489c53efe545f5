"""Object and file storage for the trainer: one module, built on fsspec.

URIs: ``s3://bucket/key``, ``gs://bucket/key``, ``az://container/key``, ``file:///abs``,
plain local paths, and ``pvc://claim/path`` (the claim mounted by the operator under
``$KUBETUNE_PVC_ROOT``, default ``/mnt/kubetune/pvc``).

Credentials come from the job's credential Secrets mounted as files, or from the process
environment (:mod:`kubetune_trainer.credentials`), never from the config, and are passed
to the clients explicitly: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL`` (``AWS_ENDPOINT_URL_S3`` wins) and
``AWS_DEFAULT_REGION`` / ``AWS_REGION`` for S3; ``GOOGLE_APPLICATION_CREDENTIALS`` (the
service-account JSON as a file) and ``STORAGE_EMULATOR_HOST`` (an emulator's address) for
GCS; ``AZURE_STORAGE_ACCOUNT_NAME``, ``AZURE_STORAGE_ACCOUNT_KEY``,
``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_SAS_TOKEN`` or a service principal
(``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``) for Azure. Without any,
each client falls back to its own chain (instance metadata, workload identity).

Every remote operation is retried with exponential backoff on transient errors
(connection resets, timeouts, throttling, 5xx); what is still failing afterwards becomes
an :class:`InfrastructureError` (retriable exit code), while a missing object or a refused
permission is reported at once, since retrying cannot fix it.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from kubetune_contract.pod import PVC_ROOT, PVC_ROOT_ENV
from kubetune_trainer import credentials
from kubetune_trainer.errors import InfrastructureError, InvalidConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

REMOTE_SCHEMES = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs"}
ATTEMPTS = int(os.environ.get("KUBETUNE_STORAGE_ATTEMPTS", "5"))
BASE_DELAY_SECONDS = float(os.environ.get("KUBETUNE_STORAGE_BASE_DELAY", "0.5"))


def pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV, PVC_ROOT))


def scheme(uri: str) -> str:
    """The URI's scheme, ``""`` for plain paths (``C:`` style drive letters never occur)."""
    parsed = urlparse(uri)
    return parsed.scheme if len(parsed.scheme) > 1 else ""


def is_remote(uri: str) -> bool:
    return scheme(uri) in REMOTE_SCHEMES


def local_path(uri: str) -> Path:
    """Map a ``file://``, ``pvc://`` or plain-path URI to a local path."""
    kind = scheme(uri)
    if kind == "":
        return Path(uri)
    if kind == "file":
        # file:///abs is absolute; file://rel/path, file://./rel and file:rel are relative
        # (to the working directory, or to the manifest's folder under ``kubetune run``).
        rest = uri[len("file:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            rest = rest[len("localhost") :] if rest.startswith("localhost/") else rest
        return Path(rest)
    if kind == "pvc":
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidConfigError(f"{uri!r}: a pvc:// URI needs a claim name: pvc://claim/path")
        return pvc_root() / parsed.netloc / parsed.path.lstrip("/")
    raise InvalidConfigError(f"{uri!r} is not a local URI")


def join(uri: str, *parts: str) -> str:
    """Append path segments to a URI or path, keeping its scheme."""
    return posixpath.join(uri.rstrip("/"), *parts) if scheme(uri) else str(Path(uri, *parts))


#: fsspec option -> the credential it is read from, per scheme.
_CREDENTIAL_OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "s3": (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ),
    "az": (
        ("account_name", "AZURE_STORAGE_ACCOUNT_NAME"),
        ("account_key", "AZURE_STORAGE_ACCOUNT_KEY"),
        ("connection_string", "AZURE_STORAGE_CONNECTION_STRING"),
        ("sas_token", "AZURE_STORAGE_SAS_TOKEN"),
        ("tenant_id", "AZURE_TENANT_ID"),
        ("client_id", "AZURE_CLIENT_ID"),
        ("client_secret", "AZURE_CLIENT_SECRET"),
    ),
}


def storage_options(kind: str) -> dict[str, Any]:
    """The fsspec options of scheme ``kind``: credentials passed explicitly, so that
    fsspec's instance cache (keyed by them) never serves a client built with older ones."""
    options: dict[str, Any] = {
        option: found
        for option, name in _CREDENTIAL_OPTIONS.get(kind, ())
        if (found := credentials.first(name)) is not None
    }
    if kind == "s3":
        options["config_kwargs"] = {"retries": {"max_attempts": 1}}
        if endpoint := credentials.first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            options["endpoint_url"] = endpoint
        if region := credentials.first("AWS_DEFAULT_REGION", "AWS_REGION"):
            options["client_kwargs"] = {"region_name": region}
    elif kind == "gs":
        if endpoint := credentials.first("STORAGE_EMULATOR_HOST"):
            options["endpoint_url"] = endpoint  # an emulator (fake-gcs-server)
        # A GOOGLE_APPLICATION_CREDENTIALS variable is read by google-auth itself.
        if "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ:
            key_file = credentials.path("GOOGLE_APPLICATION_CREDENTIALS")
            if key_file is not None:  # the JSON key itself, mounted as a file
                options["token"] = str(key_file)
            elif "endpoint_url" in options:
                # An emulator takes anyone; without this, google-auth would look for
                # credentials on the cloud's metadata server, outside the cluster.
                options["token"] = "anon"
    return options


def filesystem(uri: str) -> tuple[Any, str]:
    """Return ``(fsspec filesystem, path within it)`` for a remote URI."""
    import fsspec

    kind = scheme(uri)
    if kind not in REMOTE_SCHEMES:
        raise InvalidConfigError(f"{uri!r}: not an object-store URI (s3://, gs://, az://)")
    options = storage_options(kind)
    try:
        if kind == "gs" and "endpoint_url" in options:
            # gcsfs's default file system asks the Storage Control gRPC API (over TLS)
            # about every bucket's layout, which an emulator does not serve; the JSON
            # API alone is the store's whole interface there.
            from gcsfs.core import GCSFileSystem

            fs = GCSFileSystem(**options)
            return fs, fs._strip_protocol(uri)
        fs, path = fsspec.core.url_to_fs(uri, **options)
    except ImportError as exc:
        raise InvalidConfigError(
            f"{uri!r} needs the {REMOTE_SCHEMES[kind]} package, which this image lacks"
        ) from exc
    return fs, path


#: botocore's network failures (endpoint unreachable, connection closed), which are not
#: ``OSError`` subclasses; matched by name, since botocore comes only with s3fs.
_BOTOCORE_NETWORK_ERRORS = {"ConnectionError", "HTTPClientError"}


def _transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` might help: not for missing objects or refused access."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | ValueError):
        return False
    if any(
        kind.__module__.startswith("botocore") and kind.__name__ in _BOTOCORE_NETWORK_ERRORS
        for kind in type(exc).__mro__
    ):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = str(error.get("Code", ""))
        return status >= 500 or status == 429 or "Throttl" in code or code == "SlowDown"
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


def with_retries(what: str, operation: Callable[[], T]) -> T:
    """Run ``operation``, retrying transient failures with jittered exponential backoff."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return operation()
        except Exception as exc:  # classified below; anything unknown is re-raised as is
            if not _transient(exc):
                raise
            if attempt == ATTEMPTS:
                raise InfrastructureError(f"{what} failed after {attempt} attempts: {exc}") from exc
            delay = BASE_DELAY_SECONDS * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, ATTEMPTS, delay)
            time.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def _missing(uri: str, exc: BaseException) -> InvalidConfigError:
    return InvalidConfigError(f"{uri} does not exist or is not readable: {exc}")


def read_bytes(uri: str) -> bytes:
    if not is_remote(uri):
        try:
            return local_path(uri).read_bytes()
        except OSError as exc:
            raise _missing(uri, exc) from exc
    fs, path = filesystem(uri)
    try:
        return with_retries(f"read {uri}", lambda: fs.cat_file(path))
    except (FileNotFoundError, PermissionError) as exc:
        raise _missing(uri, exc) from exc


def write_bytes(uri: str, data: bytes) -> None:
    if not is_remote(uri):
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(data)
        partial.replace(target)
        return
    fs, path = filesystem(uri)
    with_retries(f"write {uri}", lambda: fs.pipe_file(path, data))


def exists(uri: str) -> bool:
    if not is_remote(uri):
        return local_path(uri).exists()
    fs, path = filesystem(uri)
    return bool(with_retries(f"stat {uri}", lambda: fs.exists(path)))


def list_names(uri: str) -> list[str]:
    """Names directly under a folder URI (empty when it does not exist)."""
    if not is_remote(uri):
        folder = local_path(uri)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    fs, path = filesystem(uri)

    def listing() -> list[str]:
        try:
            return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
        except FileNotFoundError:
            return []

    fs.invalidate_cache(path)
    return with_retries(f"list {uri}", listing)


def upload_file(local: Path, uri: str) -> None:
    if not is_remote(uri):
        write_bytes(uri, local.read_bytes())
        return
    fs, path = filesystem(uri)
    with_retries(f"upload {local} to {uri}", lambda: fs.put_file(str(local), path))


def upload_dir(local: Path, uri: str) -> list[str]:
    """Copy every file under ``local`` to ``uri`` (same relative layout); return their URIs.

    Remote stores get one batched ``put``, which s3fs and friends run concurrently: a
    multi-gigabyte merged model uploads in parallel, not file by file.
    """
    sources = sorted(p for p in local.rglob("*") if p.is_file())
    targets = [join(uri, *source.relative_to(local).parts) for source in sources]
    if not is_remote(uri):
        for source, target in zip(sources, targets, strict=True):
            upload_file(source, target)
        return targets
    fs, _ = filesystem(uri)
    paths = [filesystem(target)[1] for target in targets]
    with_retries(
        f"upload {local} to {uri}", functools.partial(fs.put, [str(s) for s in sources], paths)
    )
    return targets


def download_dir(uri: str, local: Path) -> Path:
    """Copy every object under ``uri`` into ``local`` (one batched ``get``); check sizes."""
    fs, path = filesystem(uri)
    local.mkdir(parents=True, exist_ok=True)

    def listing() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = fs.find(path, detail=True)
        return {key: info for key, info in found.items() if info.get("type") != "directory"}

    objects = with_retries(f"list {uri}", listing)
    if not objects:
        raise InvalidConfigError(f"{uri} holds no files")
    prefix = path.rstrip("/") + "/"
    keys = sorted(objects)
    targets = [
        local / (key[len(prefix) :] if key.startswith(prefix) else posixpath.basename(key))
        for key in keys
    ]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    with_retries(f"download {uri}", functools.partial(fs.get, keys, [str(t) for t in targets]))
    for key, target in zip(keys, targets, strict=True):
        size = objects[key].get("size")
        if size is not None and target.stat().st_size != size:
            raise InfrastructureError(
                f"download of {key} is incomplete: {target.stat().st_size} of {size} bytes"
            )
    return local


def remove_tree(uri: str) -> None:
    """Delete a folder URI and everything below it (missing is fine)."""
    if not is_remote(uri):
        shutil.rmtree(local_path(uri), ignore_errors=True)
        return
    fs, path = filesystem(uri)

    def remove() -> None:
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            return

    with_retries(f"remove {uri}", remove)
