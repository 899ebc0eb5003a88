"""The entry store the kept references (`cache`) and the kept accessible regions (`access`)
share: entries of a few files under a key, by project, made whole or not at all, verified
before reuse, pruned least recently used first.

    <folder>/<project>/<key>/        the kind's FILES and entry.json; never changed once there
    <locks>/<project>/<key>.lock     flock: exclusive while a job builds the entry (or a prune
                                     removes it), shared while a job uses it

A state dir's entries (`EntryStore.of`) are in its work dir, which may be on a shared file
system; their locks are in the state dir, on the service host's local disk (`state.locks`):
only that host's processes hold them. Without a folder of locks, they lie beside the entries.

An entry is made in a hidden folder (`.<key>.<random>`), each file and the folder synced to
disk, then renamed into place whole: a crash leaves at most a hidden folder, which `entries`
ignores and `prune` removes once no job holds its key. A file is kept as a hard link of the
job's result when that is its only name (a job's run folder, never a user's output folder,
which its user may change) and the device allows it; else as a copy. entry.json records each
file's size and SHA-256; `acquire` checks them (sizes first, then digests) before a job reuses
the entry.
An entry that fails the check, or whose entry.json records no digests (kept by an older
version), is removed under the exclusive lock and the job builds it again, with a warning
(`Lease.warning`): a damaged entry is never reused silently.

A local file's identity (`identity`) is its device, inode, size, mtime and ctime (a rewrite
changes the ctime, which no `touch -r` restores); a staged object's is its bucket, key, ETag and
size (its folder in the staging cache).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cnvkit_nf.state.layout import StateDir
from cnvkit_nf.storage import manifest

DEFAULT_MAX_BYTES = 20 << 30
WAIT_SECONDS = 1.0
CHUNK = 1 << 20


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


def identity(path: str | Path, staging_cache: Path | None = None) -> list:
    """What identifies the file at `path` as Nextflow will read it (links followed)."""
    real = Path(os.path.realpath(path))
    if staging_cache is not None and real.parent.parent == Path(staging_cache).resolve():
        return ["object", real.parent.name, real.name]  # digest of bucket/key, ETag and size
    info = os.stat(real)
    return ["file", info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


@dataclass
class Entry:
    """One kept entry; `record` is its kind's record file (a reference's reference.json), {}
    for a kind without one."""

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

    def file(self, name: str) -> Path:
        return self.folder / name


class Lease:
    """A job's hold on one key: `entry` to reuse (shared lock), or None: the job builds it
    (exclusive lock) and `keep`s what it built; then `warning` says why a kept entry was
    removed first, if one was. Released by `release`, or when the process ends."""

    def __init__(self, handle, entry: Entry | None, warning: str | None = None):
        self._handle, self.entry, self.warning = handle, entry, warning
        self.held = handle is not None  # False: another job holds the key; nothing kept

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class EntryStore:
    """Kept entries of one kind under one folder, by project (see the module's docstring): a
    kind names its FILES, its RECORD (one of them, read as JSON into `Entry.record`, or
    None) and what it is (KIND, in warnings)."""

    FILES: ClassVar[tuple[str, ...]] = ()
    RECORD: ClassVar[str | None] = None
    KIND: ClassVar[str] = "entry"
    PLACE: ClassVar[str] = ""  # the StateDir part that holds a state dir's entries

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 locks: Path | None = None):
        self.folder, self.max_bytes = Path(folder), max_bytes
        self.locks = Path(locks) if locks is not None else self.folder

    @classmethod
    def of(cls, state: StateDir, max_bytes: int = DEFAULT_MAX_BYTES) -> EntryStore:
        """The entries a state dir keeps (in its work dir), their locks in the state dir."""
        return cls(getattr(state, cls.PLACE), max_bytes, state.entry_locks(cls.PLACE))

    def _place(self, project: str) -> Path:
        digest = hashlib.sha256(project.encode()).hexdigest()[:16]  # any project id is safe
        return self.folder / digest

    def _lock(self, place: Path, key: str) -> Path:
        """The lock file of `key` in a project's `place` (of entries)."""
        folder = self.locks / place.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{key}.lock"

    def entry(self, project: str, key: str) -> Entry | None:
        return _read(self._place(project) / key, self.RECORD)

    def acquire(self, project: str, key: str, cancelled: Callable[[], bool] = lambda: False,
                waiting: Callable[[], None] = lambda: None, wait: bool = True) -> Lease | None:
        """Hold `key` for a job: a shared hold on its entry when there is one whose files
        match their record, else the exclusive hold of its builder (a damaged entry is removed
        first, once no job holds it, and the lease's `warning` says so). While another job of
        the project builds it, wait (calling `waiting` once); None when `cancelled()`
        meanwhile. Without `wait`, a lease that holds nothing (`held` false: build it, keep
        nothing) instead of waiting."""
        place = self._place(project)
        place.mkdir(parents=True, exist_ok=True)
        handle = open(self._lock(place, key), "a+")  # noqa: SIM115 - held by the lease
        told = False
        while True:
            for mode in (fcntl.LOCK_SH, fcntl.LOCK_EX):
                try:
                    fcntl.flock(handle, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    break  # being built (or used, for an exclusive hold): wait
                found, fault = _verified(place / key, self.FILES, self.RECORD)
                if found is not None:
                    fcntl.flock(handle, fcntl.LOCK_SH)  # an exclusive hold becomes shared
                    os.utime(found.folder)  # last used: what a prune keeps longest
                    return Lease(handle, found)
                if mode == fcntl.LOCK_EX:
                    if fault is None:
                        return Lease(handle, None)
                    _discard(place / key)  # no job holds it: this one has it exclusively
                    return Lease(handle, None, f"the kept {self.KIND} {key[:12]} was corrupt "
                                 f"({fault}); it was removed and this job builds the "
                                 f"{self.KIND} again")
                fcntl.flock(handle, fcntl.LOCK_UN)  # none sound: the exclusive hold builds it
            if not wait:
                handle.close()
                return Lease(None, None)
            if cancelled():
                handle.close()
                return None
            if not told:
                waiting()
                told = True
            time.sleep(WAIT_SECONDS)

    def keep(self, project: str, key: str, reference_folder: Path) -> Entry | None:
        """Keep the FILES a job made (in its results' reference/ folder) under `key`, whole
        or not at all (see the module's docstring); then prune to the size bound. The
        existing entry if any."""
        found = self.entry(project, key)
        if found is not None:
            return found
        place = self._place(project)
        partial = place / f".{key}.{uuid.uuid4().hex}"
        partial.mkdir(parents=True)
        try:
            files = {name: _keep(reference_folder / name, partial / name)
                     for name in self.FILES}
            _write(partial / "entry.json", [json.dumps(
                {"project": project, "key": key, "created": time.time(), "files": files,
                 "size": sum(f["size"] for f in files.values())}).encode()])
            _sync(partial)
            os.rename(partial, place / key)
            _sync(place)
        except OSError:
            if self.entry(project, key) is None:
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self.prune(keep=key)
        return self.entry(project, key)

    def entries(self, project: str | None = None) -> list[Entry]:
        """Every entry (of one project), most recently used first."""
        found = [entry for place in self._places(project) for folder in place.iterdir()
                 if not folder.name.startswith(".")
                 and (entry := _read(folder, self.RECORD)) is not None]
        return sorted(found, key=lambda e: e.used, reverse=True)

    def _places(self, project: str | None) -> list[Path]:
        """The folders of one project's entries, or of every project's, that exist."""
        places = [self._place(project)] if project is not None else (
            sorted(self.folder.iterdir()) if self.folder.is_dir() else [])
        return [place for place in places if place.is_dir()]

    def prune(self, max_bytes: int | None = None, project: str | None = None,
              keep: str | None = None) -> list[Entry]:
        """Remove the least recently used entries until all of them (of `project`) fit in
        `max_bytes` (default: the cache's bound); entries in use are left. The removed.
        Hidden folders a crash left (an entry half made, or half removed) go too, once no job
        holds their key."""
        for place in self._places(project):
            for folder in place.glob(".*.*"):
                self._remove(folder, folder.name.split(".")[1])
        bound = self.max_bytes if max_bytes is None else max_bytes
        entries = self.entries(project)
        total = sum(e.size for e in entries)
        removed = []
        for entry in reversed(entries):  # least recently used first
            if total <= bound:
                break
            if entry.key == keep or not self._remove(entry.folder, entry.key):
                continue
            total -= entry.size
            removed.append(entry)
        return removed

    def _remove(self, folder: Path, key: str) -> bool:
        """Remove an entry's folder (or a hidden one of its key) no job holds; False when one
        does."""
        with open(self._lock(folder.parent, key), "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            _discard(folder)
        return True


def _discard(folder: Path) -> None:
    """Remove a folder whole: out of sight first (a hidden name), then deleted. The caller
    holds its key exclusively."""
    gone = folder.with_name(f".{folder.name.lstrip('.').split('.')[0]}.{uuid.uuid4().hex}")
    os.rename(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _keep(source: Path, target: Path) -> dict:
    """Keep a job's file as `target`: a hard link when the job's results alone hold it (one
    name) and the device allows it, else a copy; its size and SHA-256. A link is not
    followed."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if info.st_nlink == 1:
            try:
                os.link(source, target, follow_symlinks=False)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES,
                                     errno.ENOTSUP):
                    raise
            else:
                made = os.lstat(target)
                if (made.st_dev, made.st_ino) != (info.st_dev, info.st_ino):
                    raise OSError(f"{source} changed while it was kept")
                os.fsync(fd)
                return {"size": made.st_size, "sha256": manifest.hexdigest(target)}
        return _write(target, _chunks(fd))
    finally:
        os.close(fd)


def _write(target: Path, chunks: Iterable[bytes]) -> dict:
    """Write a new file, synced to disk; its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    with open(target, "xb") as writer:
        for chunk in chunks:
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return {"size": size, "sha256": digest.hexdigest()}


def _chunks(fd: int) -> Iterator[bytes]:
    """The content of an open file, from where it is read."""
    with open(fd, "rb", closefd=False) as reader:
        while chunk := reader.read(CHUNK):
            yield chunk


def _sync(folder: Path) -> None:
    """Sync a folder's listing to disk (the names created or renamed in it)."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _verified(folder: Path, files: tuple[str, ...],
              record: str | None) -> tuple[Entry | None, str | None]:
    """The entry in `folder` when each of its files has the size and SHA-256 its entry.json
    records (sizes first: the cheap check); else None and what is wrong (None too when there
    is no entry)."""
    try:
        recorded = json.loads((folder / "entry.json").read_text()).get("files")
    except (FileNotFoundError, NotADirectoryError):
        return None, "entry.json is missing" if folder.is_dir() else None
    except (ValueError, AttributeError):
        return None, "entry.json is not a JSON object"
    if not isinstance(recorded, dict) or set(recorded) != set(files) or not all(
            isinstance(about, dict) for about in recorded.values()):
        return None, ("entry.json records no size and SHA-256 of its files: kept by an older "
                      "version of cnvkit-nf, it cannot be verified")
    for name in files:
        try:
            size = (folder / name).stat().st_size
        except FileNotFoundError:
            return None, f"{name} is missing"
        if size != recorded[name].get("size"):
            return None, (f"{name}: size differs from its record, {size} bytes instead of "
                          f"{recorded[name].get('size')}")
    for name in files:
        if manifest.hexdigest(folder / name) != recorded[name].get("sha256"):
            return None, f"{name}: SHA-256 differs from its record"
    entry = _read(folder, record)
    return entry, None if entry is not None else "its files cannot be read as an entry"


def _read(folder: Path, record_name: str | None) -> Entry | None:
    """The entry in `folder`; None when there is none (or only a lock file of that name, or
    files that are no entry's: `acquire` removes those)."""
    try:
        meta = json.loads((folder / "entry.json").read_text())
        record = json.loads((folder / record_name).read_text()) if record_name else {}
        return Entry(meta["project"], folder.name, folder, meta["size"], meta["created"],
                     folder.stat().st_mtime, record)
    except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError):
        return None
