"""Files and folders opened only inside allowed roots, whatever links or renames happen.

A path is walked one component at a time from an open root folder, each step with O_NOFOLLOW.
A symbolic link is followed by starting the walk again at its target (taken lexically), which
must lie in an allowed root too. What comes back is a descriptor of the file or folder that was
checked: callers read, link and write through it, never through the path again, so a folder
swapped for a link after the check changes nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_LINKS = 40  # links followed in one walk, as the kernel allows in one lookup
NAME_MAX = 255  # bytes in one file or folder name (Linux's file systems)
_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block


class Refused(Exception):
    """A path may not be used; the message says why, in a user's words."""


class Missing(Refused):
    """A path (or a folder on the way to it) does not exist."""


class Outside(Refused):
    """A path leads outside the allowed roots."""


@dataclass(frozen=True)
class Roots:
    """The folders a job may read from, those it may write into, and whose they are."""

    readable: tuple[Path, ...]
    writable: tuple[Path, ...]
    owner: str = ""  # e.g. "project lab-a", for messages
    base: str | None = None  # relative paths are taken from here; None: they are refused

    def absolute(self, path: str) -> str:
        """`path` as the walk takes it: from `base` when relative and there is one."""
        return os.path.abspath(os.path.join(self.base, path)) if self.base else path


def everywhere() -> Roots:
    """What a user's own `cnvkit-nf run` may use: anything their permissions allow, relative
    paths from the current directory."""
    return Roots((Path("/"),), (Path("/"),), "you", os.getcwd())


def inside(path: str, roots: tuple[Path, ...]) -> bool:
    """Whether `path` lies in one of `roots` (as written or resolved), by its name alone."""
    return _root_of(path, roots) is not None


def open_file(path: str, roots: tuple[Path, ...]) -> int:
    """A read-only descriptor of the regular file at `path`, reached inside `roots`."""
    fd, _ = _walk(path, roots, leaf=_FILE)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Refused("is a folder, not a file" if stat.S_ISDIR(info.st_mode) else
                      "is not a regular file (a FIFO, device or socket)")
    return fd


def open_folder(path: str, roots: tuple[Path, ...], create: bool = False) -> int:
    """A descriptor (O_PATH) of the folder at `path` inside `roots`, made with its missing
    parents when `create` is set."""
    return _walk(path, roots, leaf=_FOLDER, create=create)[0]


def deepest_folder(path: str, roots: tuple[Path, ...]) -> tuple[int, list[str]]:
    """The deepest existing folder on the way to `path` inside `roots`, and the names still
    missing below it (empty when `path` exists)."""
    fd, _, missing = located_folder(path, roots)
    return fd, missing


def located_folder(path: str, roots: tuple[Path, ...]) -> tuple[int, str, list[str]]:
    """As `deepest_folder`, with the path the walk reached that folder by: the real path of
    the root it entered, then the names it stepped through, none of them a link. That is the
    folder's one name, whichever links inside the roots lead to it, and it lies inside one of
    `roots`, as the walk enters nothing else."""
    missing: list[str] = []
    fd, here = _walk(path, roots, leaf=_FOLDER, missing=missing)
    return fd, here, missing


def subfolder(fd: int, name: str) -> int:
    """A descriptor of the folder `name` in folder `fd`, made when missing; never a link."""
    step = _step(fd, name, _FOLDER, create=True)
    if isinstance(step, str):
        raise Refused(f"{name} is a symbolic link; results are never written through one")
    return step


def existing_subfolder(fd: int, name: str) -> int:
    """A descriptor of the existing folder `name` in folder `fd`; Refused when it is a link
    (or missing)."""
    step = _step(fd, name, _FOLDER, create=False)
    if isinstance(step, str):
        raise Refused(f"{name} is a symbolic link; results are never read through one")
    return step


def file_in(fd: int, name: str) -> int:
    """A read-only descriptor of the regular file `name` in folder `fd`; Refused when it is a
    link, a folder or not a regular file."""
    step = _step(fd, name, _FILE, create=False)
    if isinstance(step, str):
        raise Refused(f"{name} is a symbolic link; results are never read through one")
    if not stat.S_ISREG(os.fstat(step).st_mode):
        os.close(step)
        raise Refused(f"{name} is not a regular file")
    return step


def link(folder: int, name: str, source: int, dest_folder: int, dest: str) -> bool:
    """Hard link the file `name` of `folder`, which must still be the open file `source`,
    as `dest` in `dest_folder`: True when linked, False when the file system refuses the link
    (another device, links not allowed, too many links: copy instead). The name is linked, not
    followed: one swapped meanwhile (for a link, another file) is unlinked again and Refused."""
    try:
        os.link(name, dest, src_dir_fd=folder, dst_dir_fd=dest_folder, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
            return False
        raise
    made, kept = os.stat(dest, dir_fd=dest_folder, follow_symlinks=False), os.fstat(source)
    if (made.st_dev, made.st_ino) != (kept.st_dev, kept.st_ino):
        os.unlink(dest, dir_fd=dest_folder)
        raise Refused(f"{name} changed while it was published")
    return True


def copy(source: int, dest: int) -> int:
    """Copy every byte of the open file `source` (from its start) into `dest`; the count.
    copy_file_range first: on one file system that can (btrfs, XFS with reflink), the copy
    shares the data's blocks until either file changes; else (another device, a kernel or file
    system without it) sendfile."""
    offset = 0
    try:
        while sent := os.copy_file_range(source, dest, 1 << 30, offset, offset):
            offset += sent
        return offset
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while sent := os.sendfile(dest, source, offset, 1 << 24):
        offset += sent
    return offset


@contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close a descriptor when the block ends."""
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(path: str, roots: tuple[Path, ...], leaf: int, create: bool = False,
          missing: list[str] | None = None) -> tuple[int, str]:
    """The descriptor of `path` opened with `leaf` flags, and the path the walk reached it by;
    with a `missing` list, the deepest existing folder instead of a Missing error (the names
    below it are appended)."""
    if not os.path.isabs(path):
        raise Refused("is not an absolute path")
    if ".." in Path(path).parts:
        raise Refused("'..' is not allowed in paths")
    current, links = os.path.normpath(path), 0
    while True:
        fd, here, names = _enter(current, roots, links)
        target = None
        try:
            for number, name in enumerate(names):
                try:
                    step = _step(fd, name, leaf if number == len(names) - 1 else _FOLDER, create)
                except Missing:
                    if missing is None:
                        raise
                    missing += names[number:]
                    break
                if isinstance(step, str):  # a link: walk again from its target
                    target = os.path.join(here, step, *names[number + 1:])
                    break
                os.close(fd)
                fd, here = step, os.path.join(here, name)
            if target is None:
                found, fd = fd, -1
                return found, here
        finally:
            if fd >= 0:
                os.close(fd)
        links += 1
        if links > MAX_LINKS:
            raise Refused("has too many levels of symbolic links")
        current = os.path.normpath(target)


def _enter(path: str, roots: tuple[Path, ...], links: int) -> tuple[int, str, list[str]]:
    """An open root holding `path`, its real path and the names below it."""
    found = _root_of(path, roots)
    if found is None:
        raise Outside("is a symbolic link (or inside one) that leads outside the data roots"
                      if links else "is outside the data roots")
    real, names = found
    for name in names:  # those that do not exist yet too (a folder to be made)
        if len(os.fsencode(name)) > NAME_MAX:
            raise Refused(f"a path component is longer than {NAME_MAX} bytes: {name[:40]}... "
                          f"({len(os.fsencode(name))} bytes)")
    return os.open(real, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), real, names


def _root_of(path: str, roots: tuple[Path, ...]) -> tuple[str, list[str]] | None:
    """The real path of an existing root holding `path` (as written or resolved) and the
    names below it."""
    for root in roots:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            continue  # a root that does not exist (yet) holds nothing
        for form in (str(root), real):
            relative = os.path.relpath(path, form)
            if relative != ".." and not relative.startswith("../"):
                return real, [] if relative == "." else relative.split(os.sep)
    return None


def _step(fd: int, name: str, flags: int, create: bool) -> int | str:
    """Open `name` in folder `fd` without following a link: its descriptor, or the link's
    target when it is one."""
    for _ in range(3):  # a name that changes kind while we look is looked at again
        try:
            return os.open(name, flags, dir_fd=fd)
        except FileNotFoundError:
            if not (create and flags == _FOLDER):
                raise Missing("does not exist") from None
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
        except PermissionError:
            raise Refused("cannot be read (permission denied)") from None
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:  # on a file system of names under NAME_MAX
                raise Refused(f"a path component is longer than its file system allows: "
                              f"{name[:40]}...") from None
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            try:
                return os.readlink(name, dir_fd=fd)
            except OSError as again:
                if again.errno != errno.EINVAL:
                    continue
                if err.errno == errno.ENOTDIR:
                    raise Refused(f"{name} is not a folder") from None
    raise Refused(f"{name} kept changing while it was opened")
