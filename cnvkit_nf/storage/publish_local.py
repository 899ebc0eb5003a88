"""Publishing a finished result into a local output folder, safely and all or nothing.

The folder is opened inside the writable roots (`confined`), and everything below it is
reached through folder descriptors that refuse links: a folder swapped for a link after the
check is never written through. Files are first copied into a hidden folder inside the output
folder; only once every one is there are they renamed into place, the manifest last. A copy
that fails (a full disk) leaves nothing of the new result behind. Files and folders get the
modes the umask gives, as any program's would.

A publication holds a lock on its hidden folder while it lasts. One that a killed process left
behind holds none: the next publication into the folder removes it. A publication stopped
(its `stop` event set) before its files are renamed into place rolls back
(`manifest.Interrupted`); once renaming has begun, it completes.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import uuid
from pathlib import Path

from cnvkit_nf.storage import confined, manifest
from cnvkit_nf.storage.confined import Roots

HIDDEN = ".publishing-"  # the prefix of a publication's hidden folder


class PublishError(Exception):
    """The result could not be published; the message says why. `refused`: the folder may
    not be written (it is outside the writable roots, or a link), rather than a failure of
    the machine (a full disk)."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused


def publish(results: Path, output_dir: str, roots: Roots,
            stop: threading.Event | None = None) -> int:
    """Publish the files of `results` into `output_dir`, manifest last; the file count.
    Leftovers of publications that a killed process left there are removed first."""
    try:
        out = confined.open_folder(output_dir, roots.writable, create=True)
    except confined.Refused as err:
        raise PublishError(f"output_dir {output_dir}: {err}", refused=True) from None
    with confined.opened(out):
        _remove_leftovers(out)
        return _Publication(out, stop or threading.Event()).run(results)


def withdraw_manifest(output_dir: str, roots: Roots) -> None:
    """Remove the manifest of an earlier result, so a folder being rewritten never looks
    complete (nothing happens when the folder does not exist yet)."""
    try:
        fd, missing = confined.deepest_folder(output_dir, roots.writable)
    except confined.Refused as err:
        raise PublishError(f"output_dir {output_dir}: {err}", refused=True) from None
    with confined.opened(fd):
        if not missing:
            try:
                os.unlink(manifest.NAME, dir_fd=fd)
            except FileNotFoundError:
                pass


_LISTED = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a folder to list or lock


def _remove_leftovers(out: int) -> None:
    """Remove the hidden folders of publications into the open folder `out` that no process
    holds any more (their process was killed); what cannot be removed stays."""
    with confined.opened(os.open(".", _LISTED, dir_fd=out)) as listed:
        names = [name for name in os.listdir(listed) if name.startswith(HIDDEN)]
    for name in names:
        try:
            fd = os.open(name, _LISTED, dir_fd=out)
        except OSError:
            continue  # gone meanwhile, or not a folder
        with confined.opened(fd):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                for staged in os.listdir(fd):
                    os.unlink(staged, dir_fd=fd)
                os.rmdir(name, dir_fd=out)
            except OSError:
                continue  # a publication under way (locked), or not one of ours


class _Publication:
    """One publication into an open output folder."""

    def __init__(self, out: int, stop: threading.Event):
        self.out, self.stop = out, stop
        self.hidden = f"{HIDDEN}{uuid.uuid4().hex}"
        self.folders: dict[str, int] = {"": out}  # relative folder -> descriptor
        self.made: list[str] = []  # folders this publication created, to remove on failure
        self.staged: list[str] = []  # relative names, in the order they are to appear

    def run(self, results: Path) -> int:
        os.mkdir(self.hidden, 0o700, dir_fd=self.out)
        self.stage = os.open(self.hidden, _LISTED, dir_fd=self.out)
        fcntl.flock(self.stage, fcntl.LOCK_EX)  # held while it lasts: not a leftover
        done = False
        try:
            count = manifest.publish(results, self._copy, stop=self.stop)
            for number, name in enumerate(self.staged):
                folder, base = self._place(name)
                os.rename(str(number), base, src_dir_fd=self.stage, dst_dir_fd=folder)
            done = True
            return count
        except (OSError, confined.Refused) as err:
            raise PublishError(f"publishing into the output folder failed: {err}") from err
        finally:
            self._clean(done)

    def _copy(self, path: Path, name: str) -> None:
        """Copy one file into the hidden folder, after checking where it will go."""
        folder, base = self._place(name)
        try:
            if stat.S_ISDIR(os.stat(base, dir_fd=folder, follow_symlinks=False).st_mode):
                raise PublishError(f"{name} exists in the output folder as a folder")
        except FileNotFoundError:
            pass
        with open(path, "rb") as source:
            dest = os.open(str(len(self.staged)), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                           | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=self.stage)
            try:
                confined.copy(source.fileno(), dest)
                os.fsync(dest)
            finally:
                os.close(dest)
        self.staged.append(name)

    def _place(self, name: str) -> tuple[int, str]:
        """The open folder that will hold `name` (made when missing) and its file name."""
        parent, _, base = name.rpartition("/")
        if parent not in self.folders:
            holder, last = self._place(parent)
            try:
                os.stat(last, dir_fd=holder, follow_symlinks=False)
            except FileNotFoundError:
                self.made.append(parent)
            self.folders[parent] = confined.subfolder(holder, last)
        return self.folders[parent], base

    def _clean(self, done: bool) -> None:
        """Remove the hidden folder, and on failure the files and folders of the new result."""
        for number in range(len(self.staged) + 1):  # + the one a failed copy may have begun
            try:
                os.unlink(str(number), dir_fd=self.stage)
            except FileNotFoundError:
                pass
        os.rmdir(self.hidden, dir_fd=self.out)
        os.close(self.stage)  # its lock held until the folder is gone
        for parent in [] if done else reversed(self.made):  # deepest first
            above, _, last = parent.rpartition("/")
            try:
                os.rmdir(last, dir_fd=self.folders[above])
            except OSError:
                pass  # not empty: it holds files of an earlier result
        for parent, fd in self.folders.items():
            if parent:
                os.close(fd)
