"""Private inputs of the job service's jobs: what Nextflow reads is what was checked.

At a job's turn each local input, opened inside its project's roots (`local_files`), enters the
store with its indexes. The file itself becomes an object of the store: a hard link made from
the open descriptor where the file system allows, else a read-only copy. Neither can be
changed by a project afterwards: a link names the checked file itself (an inode, not a path),
a copy belongs to the service.

    <store>/objects/<device>-<inode>        a hard link: the file itself, whatever its path
    <store>/objects/copy-<identity>         a read-only copy of one version of a file
    <store>/entries/<identity>/<file name>  links to the objects, named as the request names
                                            the files: the paths Nextflow is given

A file is linked once, so its ctime (which linking changes) then stays as it is until the file
itself changes. An entry is keyed by the names and stamps (device, inode, size, mtime, ctime) of
its files: the same unchanged input always gets the same path, which Nextflow's task caching
can match, whichever project or job names it; a file rewritten, even with its mtime restored,
gets a new one. Objects and entries are made under temporary names and renamed into place
whole; they are never changed afterwards. No lock is needed: the store may lie in a work dir on
a shared file system (`state.layout`).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from cnvkit_nf.launch.local_files import Input
from cnvkit_nf.state.layout import InputStoreFolder
from cnvkit_nf.storage import confined

_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
_LIBC = ctypes.CDLL(None, use_errno=True)


class StoreError(Exception):
    """An input could not be stored; the message says why."""


class InputStore:
    """The objects and entries under one folder (see the module's docstring)."""

    def __init__(self, folder: Path):
        self.layout = InputStoreFolder(Path(folder))
        self.objects, self.entries = self.layout.objects, self.layout.entries

    def admit(self, item: Input) -> Path:
        """The private path of an opened input; its indexes are beside it."""
        self.objects.mkdir(parents=True, exist_ok=True)
        self.entries.mkdir(parents=True, exist_ok=True)
        files = [(name, fd, self._object(fd)) for name, fd in item.files]
        stamps = [[name, *_stamp(fd), target.name] for name, fd, target in files]
        entry = self.entries / _digest(stamps)
        if not entry.is_dir():
            building = self.entries / f".building-{uuid.uuid4().hex}"
            building.mkdir()
            try:
                for name, _, target in files:
                    (building / name).symlink_to(self.layout.object_link(target.name))
                os.rename(building, entry)
            except OSError:
                if not entry.is_dir():  # anything but "another job made it meanwhile"
                    raise
            finally:
                shutil.rmtree(building, ignore_errors=True)
        os.utime(entry)  # last used: what a retention sweep keeps longest
        return entry / item.files[0][0]

    def _object(self, fd: int) -> Path:
        """The object of an open file: its hard link, else a copy of its present version."""
        info = os.fstat(fd)
        linked = self.objects / f"{info.st_dev}-{info.st_ino}"
        if _same_file(linked, info) or _link(fd, linked):
            return linked
        copied = self.objects / f"copy-{_digest(_stamp(fd))}"
        if not copied.is_file():
            _copy(fd, copied)
        return copied


def _digest(value: list) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:32]


def _stamp(fd: int) -> list[int]:
    info = os.fstat(fd)
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _same_file(path: Path, info: os.stat_result) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    return (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino)


def _link(fd: int, dest: Path) -> bool:
    """Hard-link the open file at `dest`; False where that is not possible (another file
    system; a file the service may not link under `protected_hardlinks`; a deleted one)."""
    if _LIBC.linkat(fd, b"", _AT_FDCWD, os.fsencode(dest), _AT_EMPTY_PATH) == 0:
        return True  # a service with CAP_DAC_READ_SEARCH links the descriptor itself
    if ctypes.get_errno() == errno.EEXIST:
        return _same_file(dest, os.fstat(fd))
    try:
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
    except FileExistsError:
        return _same_file(dest, os.fstat(fd))
    except OSError:
        return False  # EXDEV, EPERM, ENOENT
    return True


def _copy(fd: int, dest: Path) -> None:
    """Copy the open file to `dest`, read-only, with its mtime (for the index freshness rule);
    StoreError when it changes meanwhile."""
    before = os.fstat(fd)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        copied = confined.copy(fd, out)
        os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns))
    finally:
        os.close(out)
    after = os.fstat(fd)
    if copied != before.st_size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns):
        partial.unlink()
        raise StoreError(f"{dest.name} changed while it was being copied; submit the job "
                         "again once the file is complete")
    os.replace(partial, dest)
