"""Object storage over boto3: s3a://, s3:// and obs:// all speak the S3 protocol.

Endpoint, region and credentials come from the standard AWS chain (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...); an OBS endpoint is just another endpoint. Path-style
addressing is the default (what OBS-compatible and self-hosted servers expect); set
`CNVKIT_NF_S3_VIRTUAL_HOSTED=true` for virtual-hosted buckets.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from cnvkit_nf.paths import Location
from cnvkit_nf.problems import Problem

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


def client():
    """An S3 client configured from the AWS chain, with bounded retries and timeouts."""
    virtual = os.environ.get("CNVKIT_NF_S3_VIRTUAL_HOSTED", "").lower() in ("1", "true", "yes")
    config = Config(
        s3={"addressing_style": "virtual" if virtual else "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5, read_timeout=60,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.session.Session().client("s3", region_name=region, config=config)


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
    except (ClientError, BotoCoreError) as err:
        if not isinstance(err, ClientError):
            raise StorageError(_reason(err, location)) from err
        raise StorageError(_reason(_with_code(s3, location, err), location,
                                   _bucket_exists(s3, location.bucket))) from err
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
    if field.endswith("]"):
        return [_sibling(location, location.key + ".bai"),
                _sibling(location, location.key.removesuffix(".bam") + ".bai")]
    if field == "ref":
        return [_sibling(location, location.key + ".fai")]
    return []


# --- stage mode: inputs downloaded to a local cache, results uploaded with the manifest last ---

MANIFEST_NAME = "manifest.json"
_TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20,
                           max_concurrency=4)


def _sibling(location: Location, key: str) -> Location:
    return Location(location.scheme, location.bucket, key,
                    f"{location.scheme}://{location.bucket}/{key}")


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
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        s3.download_file(location.bucket, location.key, str(partial), Config=_TRANSFER)
        if partial.stat().st_size != info.size:
            raise StorageError(f"{location.raw}: downloaded {partial.stat().st_size} bytes, "
                               f"expected {info.size}")
        if re.fullmatch(r"[0-9a-f]{32}", info.etag) and _md5(partial) != info.etag:
            raise StorageError(f"{location.raw}: checksum differs from the object's ETag")
        os.utime(partial, (info.modified, info.modified))
        os.replace(partial, target)
    except (ClientError, BotoCoreError) as err:
        raise StorageError(f"{location.raw}: {_reason(err, location)}") from err
    finally:
        partial.unlink(missing_ok=True)
    return target, True


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_in(s3, inputs: list[tuple[str, Location]], cache: Path, folder: Path,
             workers: int = 8) -> tuple[dict[str, Path], int]:
    """Download a job's inputs (and their indexes, where present) in parallel.

    Each input appears in `folder/<field>/<name>`, a link into the cache, with its index beside
    it; returns the local path of every input by its URI, and how many objects were fetched.
    """
    wanted: list[tuple[str, Location]] = []
    for field, location in inputs:
        wanted.append((field, location))
        wanted += [(field, c) for c in _companions(field, location) if _readable(s3, c)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda item: download(s3, item[1], cache), wanted))
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


def publish(s3, folder: Path, output_dir: Location, workers: int = 8) -> int:
    """Upload a finished result folder to `output_dir`, verified, with the manifest last.

    Objects are written whole (S3 never exposes a partial upload), each checked by size after
    the upload; `manifest.json` goes up only when every other file is there, so a reader that
    sees it sees a complete result. Returns the number of files uploaded.
    """
    prefix = output_dir.as_folder()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)

    def put(path: Path) -> None:
        target = _sibling(prefix, prefix.key + path.relative_to(folder).as_posix())
        try:
            s3.upload_file(str(path), target.bucket, target.key, Config=_TRANSFER)
        except (ClientError, BotoCoreError, S3UploadFailedError) as err:
            raise StorageError(f"upload of {target.raw} failed: {err}") from err
        if head(s3, target).size != path.stat().st_size:
            raise StorageError(f"upload of {target.raw} is incomplete")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, files))
    put(folder / MANIFEST_NAME)
    return len(files) + 1


# --- native mode: Nextflow's nf-amazon plugin reads the objects itself (cloud executors) ---

def native_uri(location: Location) -> str:
    """The URI nf-amazon understands for an s3a://, s3:// or obs:// location."""
    return f"s3://{location.bucket}/{location.key}"


def nextflow_aws_config() -> str:
    """The `aws {}` Nextflow config for the endpoint of the AWS chain (credentials stay in the
    environment, never in the file)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    virtual = os.environ.get("CNVKIT_NF_S3_VIRTUAL_HOSTED", "").lower() in ("1", "true", "yes")
    lines = ["plugins {", "    id 'nf-amazon'", "}", "aws {", f"    region = '{region}'",
             "    client {", f"        s3PathStyleAccess = {'false' if virtual else 'true'}"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        if not re.fullmatch(r"https?://[A-Za-z0-9.:\-\[\]/]+", endpoint):
            raise StorageError(f"endpoint {endpoint!r} is not an http(s) URL")
        lines.append(f"        endpoint = '{endpoint}'")
    return "\n".join(lines + ["    }", "}"]) + "\n"
