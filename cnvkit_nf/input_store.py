"""Private inputs of the job service's jobs: what Nextflow reads is what was checked.

At a job's turn each local input, opened inside its project's roots (`local_files`), enters
the store with its indexes: hard-linked from its open descriptor where the file system allows,
else copied read-only. Neither path can be changed by the project afterwards: a link names the
checked file itself (an inode, not a path), a copy belongs to the service.

An entry is keyed by the project and by the identity of its files: device, inode, size, mtime
and ctime, as they are once linked (linking changes the ctime). A rewrite cannot keep a ctime,
so the same unchanged input always gets the same private path, which Nextflow's task caching
can match, and a changed one gets a new entry. Entries are built in a temporary folder and
renamed into place whole; they are never changed afterwards.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from cnvkit_nf import confined
from cnvkit_nf.local_files import Input

_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
_LIBC = ctypes.CDLL(None, use_errno=True)


class StoreError(Exception):
    """An input could not be stored; the message says why."""


class InputStore:
    """Entries `<folder>/<project>/<identity>/<file name>`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def admit(self, project: str, item: Input) -> Path:
        """The private path of an opened input (its indexes beside it in the same entry)."""
        home = self.folder / project
        entry = home / _identity(project, item)
        if entry.is_dir():
            return entry / item.files[0][0]
        home.mkdir(parents=True, exist_ok=True)
        building = home / f".building-{uuid.uuid4().hex}"
        building.mkdir()
        try:
            for name, fd in item.files:
                _enter_file(fd, building / name)
            entry = home / _identity(project, item)  # linking changed the ctimes
            try:
                os.rename(building, entry)
            except OSError:
                if not entry.is_dir():  # anything but "another job built it meanwhile"
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return entry / item.files[0][0]


def _identity(project: str, item: Input) -> str:
    stamps = []
    for name, fd in item.files:
        info = os.fstat(fd)
        stamps.append([name, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                       info.st_ctime_ns])
    text = json.dumps([project, stamps])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _enter_file(fd: int, dest: Path) -> None:
    """Hard-link the open file at `dest`, or copy it there read-only (other file system, or
    not the service's to link)."""
    if _LIBC.linkat(fd, b"", _AT_FDCWD, os.fsencode(dest), _AT_EMPTY_PATH) == 0:
        return  # a service with CAP_DAC_READ_SEARCH links the descriptor itself
    try:
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
        return
    except OSError:
        pass  # EXDEV, EPERM (protected_hardlinks), ENOENT (deleted since it was opened)
    before = os.fstat(fd)
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        offset = confined.copy(fd, out)
        os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns))
    finally:
        os.close(out)
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns) or offset != before.st_size:
        raise StoreError(f"{dest.name} changed while it was being copied; submit the job "
                         "again once the file is complete")
