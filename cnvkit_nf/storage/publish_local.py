"""Publishing a finished result into a local output folder, safely and all or nothing.

The folder is opened inside the writable roots (`confined`), and everything below it is
reached through folder descriptors that refuse links: a folder swapped for a link after the
check is never written through. The results are read the same way: each file is opened below
the results folder without following a link, and a name swapped (for a link, another file)
after it was opened is neither linked nor copied: the publication fails.

Files are first placed into a hidden folder inside the output folder; only once every one is
there are they renamed into place, the manifest last. A file the manifest vouches for is hard
linked when a copy would be no different (it has the mode the umask gives), nothing else
shares it (no links but its own and those of files about to be deleted, such as its task's in
the run's work dir) and the file system allows it; else (another device, links refused, a file
shared with something that must not change with it) it is copied. So are the manifest and the
files it does not cover (Nextflow's logs in pipeline_info/, which a rerun of the job rewrites
in place). A copy that fails (a full disk) leaves nothing of the
new result behind. Files and folders get the modes the umask gives, as any program's would.

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
from collections.abc import Collection
from dataclasses import dataclass
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


@dataclass
class Published:
    """What a publication placed: files linked and copied, and their bytes."""

    linked: int = 0
    copied: int = 0
    linked_bytes: int = 0
    copied_bytes: int = 0

    @property
    def files(self) -> int:
        return self.linked + self.copied

    def __str__(self) -> str:
        return (f"{self.linked} linked ({self.linked_bytes} bytes), {self.copied} copied "
                f"({self.copied_bytes} bytes)")


def publish(results: Path, output_dir: str, roots: Roots,
            stop: threading.Event | None = None,
            disposable: Collection[tuple[int, int]] = ()) -> Published:
    """Publish the files of `results` into `output_dir`, manifest last; what was linked and
    copied. A file is linked only when its links are its own in `results` and those of
    `disposable` (device, inode) pairs: files to be deleted after the publication.
    Leftovers of publications that a killed process left there are removed first."""
    try:
        out = confined.open_folder(output_dir, roots.writable, create=True)
    except confined.Refused as err:
        raise PublishError(f"output_dir {output_dir}: {err}", refused=True) from None
    with confined.opened(out):
        _remove_leftovers(out)
        return _Publication(out, stop or threading.Event(), set(disposable)).run(results)


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


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))


class _Publication:
    """One publication into an open output folder."""

    def __init__(self, out: int, stop: threading.Event, disposable: set[tuple[int, int]]):
        self.out, self.stop, self.disposable = out, stop, disposable
        self.published = Published()
        self.mode = 0o666 & ~_umask()  # what a copy's mode is
        self.sources: dict[str, int] = {}  # relative folder of the results -> descriptor
        self.hidden = f"{HIDDEN}{uuid.uuid4().hex}"
        self.folders: dict[str, int] = {"": out}  # relative folder -> descriptor
        self.made: list[str] = []  # folders this publication created, to remove on failure
        self.staged: list[str] = []  # relative names, in the order they are to appear

    def run(self, results: Path) -> Published:
        os.mkdir(self.hidden, 0o700, dir_fd=self.out)
        self.stage = os.open(self.hidden, _LISTED, dir_fd=self.out)
        fcntl.flock(self.stage, fcntl.LOCK_EX)  # held while it lasts: not a leftover
        done = False
        try:
            self.sources[""] = os.open(results, _LISTED)
            manifest.publish(results, self._stage, stop=self.stop)
            for number, name in enumerate(self.staged):
                folder, base = self._place(name)
                os.rename(str(number), base, src_dir_fd=self.stage, dst_dir_fd=folder)
            done = True
            return self.published
        except (OSError, confined.Refused) as err:
            raise PublishError(f"publishing into the output folder failed: {err}") from err
        finally:
            self._clean(done)

    def _stage(self, _path: Path, name: str) -> None:
        """Link or copy one file of the results (`name`, reached below the results folder,
        never through a link) into the hidden folder, after checking where it will go."""
        folder, base = self._place(name)
        try:
            if stat.S_ISDIR(os.stat(base, dir_fd=folder, follow_symlinks=False).st_mode):
                raise PublishError(f"{name} exists in the output folder as a folder")
        except FileNotFoundError:
            pass
        holder, last = self._source(name)
        staged = str(len(self.staged))
        with confined.opened(confined.file_in(holder, last)) as source:
            info = os.fstat(source)
            if manifest.covered(name) and self._alone(info) and confined.link(
                    holder, last, source, self.stage, staged):
                os.fsync(source)  # the result is on disk before its manifest is
                self.published.linked += 1
                self.published.linked_bytes += info.st_size
            else:
                dest = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o666, dir_fd=self.stage)
                try:
                    self.published.copied_bytes += confined.copy(source, dest)
                    os.fsync(dest)
                finally:
                    os.close(dest)
                self.published.copied += 1
        self.staged.append(name)

    def _alone(self, info: os.stat_result) -> bool:
        """Whether a results file may be linked: it has a copy's mode, and no links but its
        own and a disposable one."""
        return (stat.S_IMODE(info.st_mode) == self.mode
                and info.st_nlink - ((info.st_dev, info.st_ino) in self.disposable) == 1)

    def _source(self, name: str) -> tuple[int, str]:
        """The open results folder holding `name` (never reached through a link), and the
        file's name in it."""
        parent, _, base = name.rpartition("/")
        if parent not in self.sources:
            holder, last = self._source(parent)
            self.sources[parent] = confined.existing_subfolder(holder, last)
        return self.sources[parent], base

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
        for fd in self.sources.values():
            os.close(fd)
