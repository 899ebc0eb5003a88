"""References kept between jobs: a job whose pooled reference would be built from the same
inputs as an earlier job's reuses that one instead (README, "Reference reuse").

    <folder>/<project>/<key>/        reference.cnn, reference.json, targets.bed,
                                     antitargets.bed, entry.json; never changed once there
    <folder>/<project>/<key>.lock    flock: exclusive while a job builds the entry (or a prune
                                     removes it), shared while a job uses it

The key digests what shapes a reference: the code of the stages that build it, the CNVkit
version, the option strings of the shaping substeps, and the identity of every control BAM, the
FASTA, the BED and the annotation as Nextflow reads them. A local file's identity is its device,
inode, size, mtime and ctime (a rewrite changes the ctime, which no `touch -r` restores); a
staged object's is its bucket, key, ETag and size (its folder in the staging cache). A job whose
inputs changed while it built a reference does not keep it. Entries are made under a temporary
name and renamed into place whole, and each project has its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnvkit_nf.pipeline_files import PIPELINE, load_bin

FILES = ("reference.cnn", "reference.json", "targets.bed", "antitargets.bed")
# The pipeline's code that builds a reference: a change to it is a new key.
BUILDERS = ("modules/cnvkit/prepare/main.nf", "modules/cnvkit/coverage/main.nf",
            "modules/cnvkit/reference/main.nf", "bin/cnvkit_stage.py", "bin/reference_record.py")
DEFAULT_MAX_BYTES = 20 << 30
WAIT_SECONDS = 1.0


def parse_size(text: str) -> int:
    """Bytes in `20G`, `512M`, `1.5T`, `4096` (binary units); ValueError otherwise."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    value = float(number)
    if not 0 <= value < 1 << 60 or value != value:
        raise ValueError(f"not a size: {text!r}")
    return int(value * units[unit])


# The request fields whose options shape a reference, as the record defines them.
SHAPING = load_bin("reference_record").SHAPING


def identity(path: str | Path, staging_cache: Path | None = None) -> list:
    """What identifies the file at `path` as Nextflow will read it (links followed)."""
    real = Path(os.path.realpath(path))
    if staging_cache is not None and real.parent.parent == Path(staging_cache).resolve():
        return ["object", real.parent.name, real.name]  # digest of bucket/key, ETag and size
    info = os.stat(real)
    return ["file", info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def key_of(params: dict, staging_cache: Path | None = None) -> str | None:
    """The cache key of the reference a job's params would build; None when they build none
    (a reused reference) or name an input that is not there."""
    if params.get("reference_cnn"):
        return None
    inputs = {"controls": sorted(params["control_inputs"]), "ref": params["ref"],
              "bed": params["bed"], "annotation": params.get("annotation_file")}
    try:
        identities = {
            "controls": [identity(bam, staging_cache) for bam in inputs["controls"]],
            **{name: identity(inputs[name], staging_cache) if inputs[name] else None
               for name in ("ref", "bed", "annotation")},
        }
    except OSError:
        return None
    described = {
        "pipeline": [hashlib.sha256((PIPELINE / n).read_bytes()).hexdigest() for n in BUILDERS],
        "cnvkit": importlib.metadata.version("cnvkit"),
        "options": {field: params["checked_options"][field]["args"] for field in SHAPING},
        "inputs": identities,
        "control_names": [Path(bam).name for bam in inputs["controls"]],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class Entry:
    """One kept reference."""

    project: str
    key: str
    folder: Path
    size: int
    created: float
    used: float
    record: dict

    @property
    def reference(self) -> Path:
        return self.folder / "reference.cnn"


class Lease:
    """A job's hold on one key: `entry` to reuse (shared lock), or None: the job builds it
    (exclusive lock) and `keep`s what it built. Released by `release`, or when the process
    ends."""

    def __init__(self, handle, entry: Entry | None):
        self._handle, self.entry = handle, entry

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ReferenceCache:
    """The kept references under one folder, by project (see the module's docstring)."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.folder, self.max_bytes = Path(folder), max_bytes

    def _place(self, project: str) -> Path:
        digest = hashlib.sha256(project.encode()).hexdigest()[:16]  # any project id is safe
        return self.folder / digest

    def entry(self, project: str, key: str) -> Entry | None:
        return _read(self._place(project) / key)

    def acquire(self, project: str, key: str, cancelled: Callable[[], bool] = lambda: False,
                waiting: Callable[[], None] = lambda: None) -> Lease | None:
        """Hold `key` for a job: a shared hold on its entry when there is one, else the
        exclusive hold of its builder. While another job of the project builds it, wait
        (calling `waiting` once); None when `cancelled()` meanwhile."""
        place = self._place(project)
        place.mkdir(parents=True, exist_ok=True)
        handle = open(place / f"{key}.lock", "a+")  # noqa: SIM115 - held by the lease
        told = False
        while True:
            for mode in (fcntl.LOCK_SH, fcntl.LOCK_EX):
                try:
                    fcntl.flock(handle, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    break  # being built (or used, for an exclusive hold): wait
                found = self.entry(project, key)
                if found is not None:
                    fcntl.flock(handle, fcntl.LOCK_SH)  # an exclusive hold becomes shared
                    os.utime(found.folder)  # last used: what a prune keeps longest
                    return Lease(handle, found)
                if mode == fcntl.LOCK_EX:
                    return Lease(handle, None)
                fcntl.flock(handle, fcntl.LOCK_UN)  # no entry: the exclusive hold builds it
            if cancelled():
                handle.close()
                return None
            if not told:
                waiting()
                told = True
            time.sleep(WAIT_SECONDS)

    def keep(self, project: str, key: str, reference_folder: Path) -> Entry | None:
        """Keep the reference a job built (its results' reference/ folder) under `key`,
        whole or not at all; then prune to the size bound. The existing entry if any."""
        found = self.entry(project, key)
        if found is not None:
            return found
        place = self._place(project)
        partial = place / f".{key}.{uuid.uuid4().hex}"
        partial.mkdir(parents=True)
        try:
            for name in FILES:
                shutil.copyfile(reference_folder / name, partial / name)
            size = sum(f.stat().st_size for f in partial.iterdir())
            (partial / "entry.json").write_text(json.dumps(
                {"project": project, "key": key, "size": size, "created": time.time()}))
            os.rename(partial, place / key)
        except OSError:
            if self.entry(project, key) is None:
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self.prune(keep=key)
        return self.entry(project, key)

    def entries(self, project: str | None = None) -> list[Entry]:
        """Every entry (of one project), most recently used first."""
        places = [self._place(project)] if project is not None else (
            sorted(p for p in self.folder.iterdir() if p.is_dir()) if self.folder.is_dir()
            else [])
        found = []
        for place in places:
            if not place.is_dir():
                continue
            found += [entry for folder in place.iterdir() if not folder.name.startswith(".")
                      and (entry := _read(folder)) is not None]
        return sorted(found, key=lambda e: e.used, reverse=True)

    def prune(self, max_bytes: int | None = None, project: str | None = None,
              keep: str | None = None) -> list[Entry]:
        """Remove the least recently used entries until all of them (of `project`) fit in
        `max_bytes` (default: the cache's bound); entries in use are left. The removed."""
        bound = self.max_bytes if max_bytes is None else max_bytes
        entries = self.entries(project)
        total = sum(e.size for e in entries)
        removed = []
        for entry in reversed(entries):  # least recently used first
            if total <= bound:
                break
            if entry.key == keep or not self._remove(entry):
                continue
            total -= entry.size
            removed.append(entry)
        return removed

    def _remove(self, entry: Entry) -> bool:
        """Remove an entry no job holds; False when one does."""
        with open(entry.folder.parent / f"{entry.key}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            gone = entry.folder.with_name(f".{entry.key}.{uuid.uuid4().hex}")
            os.rename(entry.folder, gone)  # out of sight whole, then deleted
            shutil.rmtree(gone, ignore_errors=True)
        return True


def _read(folder: Path) -> Entry | None:
    """The entry in `folder`; None when there is none (or only a lock file of that name)."""
    try:
        meta = json.loads((folder / "entry.json").read_text())
        record = json.loads((folder / "reference.json").read_text())
        info = folder.stat()
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return Entry(meta["project"], folder.name, folder, meta["size"], meta["created"],
                 info.st_mtime, record)
