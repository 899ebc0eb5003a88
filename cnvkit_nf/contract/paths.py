"""Locations of request files: local paths or object-storage URIs (s3a://, s3://, obs://)."""

import functools
import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import ModuleType

REMOTE_SCHEMES = ("s3a", "s3", "obs")
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
# Characters Nextflow gives a meaning to in a path it reads from a params file: `${...}` is
# expanded (`${projectDir}`...), and `* ? [ ] { }` make `file()` read the path as a glob.
NEXTFLOW_SPECIAL = "${}*?[]"


@dataclass(frozen=True)
class Location:
    """A parsed path; ``key`` is the object key, or the path itself for ``scheme == "file"``."""

    scheme: str
    bucket: str | None
    key: str
    raw: str

    @property
    def is_remote(self) -> bool:
        """True for object-storage URIs."""
        return self.scheme != "file"

    @property
    def family(self) -> str:
        """The kind of store the scheme names: s3a:// and s3:// name the same objects."""
        return "s3" if self.scheme in ("s3", "s3a") else self.scheme

    @property
    def name(self) -> str:
        """The last path component (a trailing "/" is ignored)."""
        return PurePosixPath(self.key).name

    def local_path(self) -> Path:
        """The local file-system path; only for local locations."""
        if self.is_remote:
            raise ValueError(f"{self.raw!r} is not a local path")
        return Path(self.key)

    def as_folder(self) -> "Location":
        """The same location with a trailing "/", meaning a folder (for ``output_dir``)."""
        if self.key.endswith("/"):
            return self
        return replace(self, key=self.key + "/", raw=self.raw + "/")


def parse_location(text: str) -> Location:
    """Parse a local path or an s3a://, s3:// or obs:// URI; raise ValueError if invalid."""
    if not text:
        raise ValueError("empty path")
    if any(c in text for c in "\0\n\r"):
        raise ValueError("path contains a NUL or line-break character")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError("path is not valid Unicode text (it holds a lone surrogate such as "
                         "\\ud800)")
    special = [c for c in NEXTFLOW_SPECIAL if c in text]
    if special:
        raise ValueError(f"path contains {' '.join(special)}: Nextflow would expand ${{...}} "
                         "or read the path as a file pattern, not as the file named; rename "
                         "the folder or file")
    uri = _URI.fullmatch(text)
    if uri is None:
        return Location("file", None, text, text)
    scheme, rest = uri.groups()
    if scheme not in REMOTE_SCHEMES:
        accepted = ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
        raise ValueError(f"unsupported scheme {scheme}:// (use a local path or {accepted})")
    bucket, _, key = rest.partition("/")
    if not key:
        raise ValueError(f"{text!r} has no object key after the bucket ({scheme}://bucket/key)")
    check_bucket(bucket)
    return Location(scheme, bucket, key, text)


def index_names(field: str, key: str) -> list[str]:
    """The index files the pipeline reads beside an input (a path or an object key; `field`
    as the request names it, a sample row's BAM "samples[2].bam" or "samplesheet line 4,
    column bam"): a BAM's
    `x.bam.bai` and `x.bai` (a CRAM's `x.cram.crai` and `x.crai`), the reference's `.fai`, a
    reused reference's build record (`x.cnn` -> `x.json`); none for other fields."""
    if field == "ref":
        return [key + ".fai"]
    if field == "reference_cnn":
        return [_pipeline_rules("reference_record").record_path(key)]
    if field.startswith(("experimental_inputs[", "control_inputs[")) or field.endswith("bam"):
        stem, kind = posixpath.splitext(key)
        suffixes = _pipeline_rules("input_indexes").INDEX_SUFFIXES.get(kind, ())
        return [stem + suffix for suffix in suffixes]
    return []


@functools.cache
def _pipeline_rules(script: str) -> ModuleType:
    """A script of `bin/` whose rule says where a file lies beside an input: the input check's
    (a BAM's or CRAM's index, `input_indexes`) or the reference record's (its record)."""
    from cnvkit_nf.pipeline_files import load_bin

    return load_bin(script)


def check_bucket(bucket: str) -> None:
    """Raise ValueError unless ``bucket`` follows the S3 bucket naming rules."""
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket):
        raise ValueError(
            f"invalid bucket name {bucket!r}: use 3-63 lowercase letters, digits, dots or "
            "hyphens, starting and ending with a letter or digit, not an IP address"
        )
