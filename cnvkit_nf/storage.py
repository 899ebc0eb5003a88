"""Object storage over boto3: s3a://, s3:// and obs:// all speak the S3 protocol.

Endpoint, region and credentials come from the standard AWS chain (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...); an OBS endpoint is just another endpoint. Path-style
addressing is the default (what OBS-compatible and self-hosted servers expect); set
`CNVKIT_NF_S3_VIRTUAL_HOSTED=true` for virtual-hosted buckets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
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
    """What a HEAD of an object tells: its size and ETag."""

    size: int
    etag: str


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
    return ObjectInfo(answer["ContentLength"], answer["ETag"].strip('"'))


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
    def sibling(key: str) -> Location:
        return Location(location.scheme, location.bucket, key, f"{location.scheme}://"
                        f"{location.bucket}/{key}")

    if field.endswith("]"):
        return [sibling(location.key + ".bai"), sibling(location.key.removesuffix(".bam") + ".bai")]
    if field == "ref":
        return [sibling(location.key + ".fai")]
    return []
