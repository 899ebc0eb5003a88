"""Object storage over boto3: s3a://, s3:// and obs:// all speak the S3 protocol.

Endpoint, region and credentials come from the standard AWS chain (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...), optionally overridden by a settings file (see
`load_settings`); an OBS endpoint is just another endpoint. Path-style addressing is the
default (what OBS-compatible and self-hosted servers expect).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from cnvkit_nf.contract.paths import Location, index_names
from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.storage import manifest

_CREDENTIAL_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
                     "ExpiredToken"}


class StorageError(Exception):
    """An object-storage call failed; the message says why in a user's words."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD of an object tells: its size, ETag and modification time (Unix s)."""

    size: int
    etag: str
    modified: float


@dataclass(frozen=True)
class Settings:
    """Where the object store is and how to reach it: the AWS chain, overridden by a file."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    virtual_hosted: bool = False
    profile: str | None = None
    endpoints: tuple[tuple[str, str], ...] = ()  # per-scheme endpoints, e.g. (("obs", url),)

    def endpoint_for(self, scheme: str) -> str | None:
        """The endpoint that serves a URI scheme."""
        return dict(self.endpoints).get(scheme, self.endpoint_url)


_SETTING_KEYS = {"endpoint_url", "region", "addressing_style", "profile", "endpoints"}


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`,
    `CNVKIT_NF_S3_VIRTUAL_HOSTED`), then from a JSON file (`path`, or the file named by
    `CNVKIT_NF_STORAGE_CONFIG`) with any of: endpoint_url, region, addressing_style
    ("path"|"virtual"), profile, endpoints ({"obs": "https://..."}). Credentials stay in the
    AWS chain (environment or profile), never in this file."""
    env = os.environ
    values = {
        "endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "virtual_hosted": env.get("CNVKIT_NF_S3_VIRTUAL_HOSTED", "").lower() in ("1", "true"),
        "profile": env.get("AWS_PROFILE"),
    }
    path = path or env.get("CNVKIT_NF_STORAGE_CONFIG")
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise StorageError(f"storage config {path}: {err}") from err
        unknown = set(data) - _SETTING_KEYS if isinstance(data, dict) else {"(not an object)"}
        if unknown:
            raise StorageError(f"storage config {path}: unknown setting(s) {sorted(unknown)}; "
                               f"known: {sorted(_SETTING_KEYS)}")
        values.update({k: data[k] for k in ("endpoint_url", "region", "profile") if k in data})
        if "addressing_style" in data:
            values["virtual_hosted"] = data["addressing_style"] == "virtual"
        values["endpoints"] = tuple(sorted(data.get("endpoints", {}).items()))
    for url in [values["endpoint_url"], *dict(values.get("endpoints", ())).values()]:
        if url and not re.fullmatch(r"https?://[A-Za-z0-9.:\-\[\]/]+", url):
            raise StorageError(f"endpoint {url!r} is not an http(s) URL")
    return Settings(**values)


def endpoint_problems(settings: Settings, locations: list[Location]) -> list[Problem]:
    """One job reads and writes one object store: its URIs must share an endpoint."""
    used = {loc.scheme: settings.endpoint_for(loc.scheme) for loc in locations if loc.is_remote}
    if len(set(used.values())) <= 1:
        return []
    detail = ", ".join(f"{scheme}:// -> {url or 'the AWS default'}"
                       for scheme, url in sorted(used.items()))
    return [Problem("", f"mixed endpoints ({detail}): one job reads and writes one object "
                        "store; use one scheme or point the schemes at the same endpoint")]


def client(settings: Settings | None = None, scheme: str = "s3"):
    """An S3 client for a scheme's endpoint, with bounded retries and timeouts."""
    settings = settings or load_settings()
    config = Config(
        s3={"addressing_style": "virtual" if settings.virtual_hosted else "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5, read_timeout=60,
    )
    session = boto3.session.Session(profile_name=settings.profile)
    return session.client("s3", region_name=settings.region, config=config,
                          endpoint_url=settings.endpoint_for(scheme))


def _reason(err: Exception, location: Location, bucket_exists=None) -> str:
    """A user-facing reason for a failed call on a location."""
    if isinstance(err, EndpointConnectionError):
        return f"object storage endpoint unreachable ({err.kwargs.get('endpoint_url', '?')})"
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in _CREDENTIAL_CODES:
            return f"credentials rejected by the object storage ({code})"
        if code in ("403", "AccessDenied", "Forbidden"):
            return "access denied"
        if code in ("NoSuchBucket",) or (code in ("404", "NotFound", "NoSuchKey")
                                           and bucket_exists is False):
            return f"bucket {location.bucket!r} does not exist"
        if code in ("404", "NotFound", "NoSuchKey"):
            return "not found"
        return f"object storage error {code}: {err}"
    return f"object storage error: {err}"


def _bucket_exists(s3, bucket: str) -> bool | None:
    """True/False when the server says; None when it cannot tell (e.g. access denied)."""
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        return False if code in ("404", "NoSuchBucket", "NotFound") else None
    except BotoCoreError:
        return None


def head(s3, location: Location) -> ObjectInfo:
    """Size and ETag of an object; StorageError with the reason when it cannot be read."""
    try:
        answer = s3.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as err:
        raise StorageError(_reason(_with_code(s3, location, err), location,
                                   _bucket_exists(s3, location.bucket))) from err
    except BotoCoreError as err:
        raise StorageError(_reason(err, location)) from err
    return ObjectInfo(answer["ContentLength"], answer["ETag"].strip('"'),
                      answer["LastModified"].timestamp())


def _with_code(s3, location: Location, err: ClientError) -> ClientError:
    """A HEAD answer has no body, so a 403 does not say why: ask again with a 1-byte GET."""
    if str(err.response.get("Error", {}).get("Code")) != "403":
        return err
    try:
        s3.get_object(Bucket=location.bucket, Key=location.key, Range="bytes=0-0")
    except ClientError as detailed:
        return detailed
    return err


def _readable(s3, location: Location) -> bool:
    """Whether an object exists and can be read."""
    try:
        head(s3, location)
    except StorageError:
        return False
    return True


def preflight(s3, inputs: list[tuple[str, Location]], output_dir: Location) -> list[Problem]:
    """Check, without writing anything, that a job's objects can be read and its folder used.

    Every input must exist and be readable; a BAM's index (`x.bam.bai` or `x.bai`) and the
    reference's `.fai` are looked for and noted (as warnings) when they will be built; the
    output folder's bucket must exist and the folder must not be an existing object.
    """
    problems: list[Problem] = []
    unreachable = False
    for field, location in inputs:
        try:
            head(s3, location)
        except StorageError as err:
            problems.append(Problem(field, f"{location.raw}: {err}"))
            unreachable = unreachable or "unreachable" in str(err)
            continue
        companions = _companions(field, location)
        if companions and not any(_readable(s3, c) for c in companions):
            problems.append(Problem(field, f"{location.raw}: no {companions[0].name} beside "
                                           "it; it will be built", "warning"))
    if unreachable or not output_dir.is_remote:
        return problems  # unreachable: every further call would fail the same way
    folder = output_dir.as_folder()
    bucket = _bucket_exists(s3, folder.bucket)
    if bucket is False:
        problems.append(Problem("output_dir", f"{folder.raw}: bucket {folder.bucket!r} does "
                                              "not exist"))
    elif _readable(s3, Location(folder.scheme, folder.bucket, folder.key.rstrip("/"),
                                folder.raw)):
        problems.append(Problem("output_dir", f"{folder.raw}: names an existing object, not a "
                                              "folder"))
    return problems


def _companions(field: str, location: Location) -> list[Location]:
    """The index objects a file is used with: BAM index, or the reference's .fai."""
    return [_sibling(location, key) for key in index_names(field, location.key)]


# --- stage mode: inputs downloaded to a local cache, results uploaded with the manifest last ---

_TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20,
                           max_concurrency=4)


def _sibling(location: Location, key: str) -> Location:
    return Location(location.scheme, location.bucket, key,
                    f"{location.scheme}://{location.bucket}/{key}")


def _md5():
    return hashlib.md5(usedforsecurity=False)


def read_head(s3, location: Location, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a small object (a samplesheet), from its start: more than
    `limit` says that it is too large, without reading it all."""
    try:
        answer = s3.get_object(Bucket=location.bucket, Key=location.key,
                               Range=f"bytes=0-{limit}")
        return answer["Body"].read(limit + 1)
    except ClientError as err:
        raise StorageError(_reason(_with_code(s3, location, err), location,
                                   _bucket_exists(s3, location.bucket))) from err
    except BotoCoreError as err:
        raise StorageError(_reason(err, location)) from err


def download(s3, location: Location, cache: Path) -> tuple[Path, bool]:
    """The object in the local cache (downloaded unless already there); and whether it was.

    The cache is keyed by the object's identity (bucket/key, ETag, size), so a changed object
    is fetched again. Downloads land in a temporary file, are verified (size, and MD5 where the
    ETag is one) and renamed into place, so the cache never holds a partial file.
    """
    info = head(s3, location)
    identity = hashlib.sha256(f"{location.bucket}/{location.key}\0{info.etag}\0{info.size}"
                              .encode()).hexdigest()[:32]
    target = cache / identity / location.name
    if target.is_file() and target.stat().st_size == info.size:
        os.utime(target.parent)  # last used: what a retention sweep keeps longest
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        s3.download_file(location.bucket, location.key, str(partial), Config=_TRANSFER)
        if partial.stat().st_size != info.size:
            raise StorageError(f"{location.raw}: downloaded {partial.stat().st_size} bytes, "
                               f"expected {info.size}")
        if (re.fullmatch(r"[0-9a-f]{32}", info.etag)
                and manifest.hexdigest(partial, _md5) != info.etag):
            raise StorageError(f"{location.raw}: checksum differs from the object's ETag")
        os.utime(partial, (info.modified, info.modified))
        os.replace(partial, target)
    except (ClientError, BotoCoreError) as err:
        raise StorageError(f"{location.raw}: {_reason(err, location)}") from err
    finally:
        partial.unlink(missing_ok=True)
    return target, True


def stage_in(s3, inputs: list[tuple[str, Location]], cache: Path, folder: Path,
             workers: int = 8, progress=None) -> tuple[dict[str, Path], int]:
    """Download a job's inputs (and their indexes, where present) in parallel.

    Each input appears in `folder/<field>/<name>`, a link into the cache, with its index beside
    it; returns the local path of every input by its URI, and how many objects were fetched.
    `progress(done, total)`, if given, is called as each object is ready.
    """
    wanted: list[tuple[str, Location]] = []
    for field, location in inputs:
        wanted.append((field, location))
        wanted += [(field, c) for c in _companions(field, location) if _readable(s3, c)]
    done = []
    lock = threading.Lock()

    def fetch(item: tuple[str, Location]) -> tuple[Path, bool]:
        result = download(s3, item[1], cache)
        with lock:
            done.append(item)
            if progress:
                progress(len(done), len(wanted))
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(fetch, wanted))
    local: dict[str, Path] = {}
    fetched = 0
    for (field, location), (cached, was_fetched) in zip(wanted, results, strict=True):
        fetched += was_fetched
        link = folder / re.sub(r"[^A-Za-z0-9_]", "_", field) / location.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(cached)
        local.setdefault(location.raw, link)
    return {location.raw: local[location.raw] for _, location in inputs}, fetched


def withdraw_manifest(s3, output_dir: Location) -> None:
    """Delete the manifest of an earlier result in `output_dir`, before it is rewritten, so the
    folder never looks complete while a new run replaces its files."""
    folder = output_dir.as_folder()
    try:
        s3.delete_object(Bucket=folder.bucket, Key=folder.key + manifest.NAME)
    except (ClientError, BotoCoreError) as err:
        raise StorageError(f"cannot withdraw {folder.raw}{manifest.NAME}: "
                           f"{_reason(err, folder)}") from err


def publish(s3, folder: Path, output_dir: Location, workers: int = 8,
            stop: threading.Event | None = None) -> int:
    """Upload a finished result folder to `output_dir`, verified, with the manifest last.

    Objects are written whole (S3 never exposes a partial upload), each checked by size after
    the upload; `manifest.json` goes up only when every other file is there, so a reader that
    sees it sees a complete result. When an upload fails, or `stop` is set before the manifest
    went up (manifest.Interrupted), the objects already written are deleted again (as far as
    the store still answers). Returns the number of files uploaded.
    """
    prefix = output_dir.as_folder()
    written: list[str] = []

    def put(path: Path, name: str) -> None:
        target = _sibling(prefix, prefix.key + name)
        written.append(target.key)
        try:
            s3.upload_file(str(path), target.bucket, target.key, Config=_TRANSFER)
        except (ClientError, BotoCoreError, S3UploadFailedError) as err:
            raise StorageError(f"upload of {target.raw} failed: {err}") from err
        if head(s3, target).size != path.stat().st_size:
            raise StorageError(f"upload of {target.raw} is incomplete")

    try:
        return manifest.publish(folder, put, workers, stop)
    except Exception:
        for start in range(0, len(written), 1000):  # the most one call deletes
            with contextlib.suppress(ClientError, BotoCoreError):
                s3.delete_objects(Bucket=prefix.bucket, Delete={
                    "Objects": [{"Key": key} for key in written[start:start + 1000]],
                    "Quiet": True})
        raise


# --- native mode: Nextflow's nf-amazon plugin reads the objects itself (cloud executors) ---

def native_uri(location: Location) -> str:
    """The URI nf-amazon understands for an s3a://, s3:// or obs:// location."""
    return f"s3://{location.bucket}/{location.key}"


def nextflow_aws_config(settings: Settings, scheme: str = "s3") -> str:
    """The `aws {}` Nextflow config for a scheme's endpoint (credentials stay in the
    environment, never in the file)."""
    lines = ["plugins {", "    id 'nf-amazon'", "}", "aws {", f"    region = '{settings.region}'"]
    if settings.profile:
        lines.append(f"    profile = '{settings.profile}'")
    lines += ["    client {",
              f"        s3PathStyleAccess = {'false' if settings.virtual_hosted else 'true'}"]
    endpoint = settings.endpoint_for(scheme)
    if endpoint:
        lines.append(f"        endpoint = '{endpoint}'")
    return "\n".join(lines + ["    }", "}"]) + "\n"
