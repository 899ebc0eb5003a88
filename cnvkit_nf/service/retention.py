"""Retention: what a state dir keeps of ended jobs and staged inputs (docs/retention.md).

It deals with the parts of the state dir and its work dir that `state.layout` names: run
folders (each with its shared part, in the work dir), and staged inputs (the staging cache's
downloads, the input store's entries and the objects they link to, in the work dir). Its locks
are the state dir's, local (`state.locks`). A job holds the retention lock shared from the
start of its staging until its run started (`state.locks.staging`), a sweep of staged inputs
holds it exclusive; the clean lock lets one clean run at a time.

`clean` applies a `Policy`, in this order:
- age: a final job that ended more than `max_age` ago is forgotten, its record and its run
  folder (it can no longer be retried); a staged input that no active job uses, unused for
  more than `max_age`, is removed;
- disk: while run folders and staged inputs take more than `max_disk`, staged inputs no active
  job uses are removed, least recently used first, then run folders of final jobs, oldest end
  first; their records stay (their warnings say so) and a retry of one runs afresh;
- leftovers: folders being removed, partial downloads and copies, objects no entry links to,
  and run folders without a job record (older than an hour) are removed.
Nothing of an active job (LAUNCHING, RUNNING, CANCELING) is touched: its run folder, and every
staged input its params.json or its run folder's inputs/ name. A staged input removed is made
again, identically, by the next job that uses it. The references (references/) have their
own bound (`cnvkit-nf cache prune`).

Disk use counts what removing a thing would free: a hard link to a project's file frees
nothing, so it counts nothing (and stays: unlinking it would change the file's ctime). A record
is deleted or marked, and its run folder renamed away (`.removing-*`, deleted afterwards),
inside one SQLite write transaction that checks again that the job is final: a concurrent retry
happens before (the job is active, and skipped) or after (it finds no record, or runs afresh).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnvkit_nf.launch.runner import disk_bytes, settle
from cnvkit_nf.state.jobs import ACTIVE_STATES, FINAL_STATES, Job, JobStore
from cnvkit_nf.state.layout import RunFolder, StateDir
from cnvkit_nf.state.locks import flock

ORPHAN_SECONDS = 3600  # a run folder without a record is left this long (a job being created)
LOCK_WAIT_SECONDS = 60.0  # how long a clean waits for jobs to finish staging, else sweeps later
TRASH = ".removing-"
DISCARDED = "its run folder was removed by the retention policy: a retry runs afresh"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in `30d`, `12h`, `90m`, `45s` or `45`; ValueError otherwise."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text).lower())
    if not found:
        raise ValueError(f"not a duration: {text!r}")
    return float(found[1]) * _UNITS[found[2] or "s"]


def _duration(seconds: float) -> str:
    unit = next(u for u in "dhms" if seconds % _UNITS[u] == 0 or u == "s")
    return f"{seconds / _UNITS[unit]:g}{unit}"


def _amount(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


@dataclass(frozen=True)
class Policy:
    """How long ended jobs and unused staged inputs are kept (seconds), and how much disk run
    folders and staged inputs may take (bytes); None: no bound."""

    max_age: float | None = None
    max_disk: int | None = None

    @property
    def empty(self) -> bool:
        return self.max_age is None and self.max_disk is None


@dataclass(frozen=True)
class Schedule:
    """The job service's retention: a policy applied every `every` seconds."""

    policy: Policy
    every: float


@dataclass
class Item:
    """A thing of the state dir (its path there; of a separate work dir, its absolute path),
    the bytes it takes, and why it was removed or kept."""

    path: str
    bytes: int
    why: str


@dataclass
class Report:
    """What a clean removed (or, dry, would remove), the jobs it forgot, what it kept and why,
    and the disk use it leaves."""

    dry_run: bool
    max_disk: int | None = None
    removed: list[Item] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)
    disk: int = 0  # bytes of run folders and staged inputs left

    @property
    def freed(self) -> int:
        return sum(item.bytes for item in self.removed)

    @property
    def over(self) -> int:
        """Bytes beyond max_disk left (what active jobs hold, see `kept`)."""
        return max(0, self.disk - self.max_disk) if self.max_disk is not None else 0

    def summary(self) -> str:
        """One line: what was removed and forgotten, and the disk use left."""
        verb = "would remove" if self.dry_run else "removed"
        text = (f"{verb} {len(self.removed)} item(s), {_amount(self.freed)}; "
                f"{len(self.forgotten)} job record(s) forgotten; {_amount(self.disk)} in use")
        if self.max_disk is not None:
            text += f" of {_amount(self.max_disk)}"
        if self.over:
            text += f", {_amount(self.over)} over: see what was kept"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "freed": self.freed, "over": self.over}


def clean(state_dir: Path, store: JobStore, policy: Policy, dry_run: bool = False,
          now: float | None = None, lock_wait: float = LOCK_WAIT_SECONDS) -> Report:
    """Apply `policy` to the state dir (see the module's docstring); with `dry_run`, report
    what would be removed and remove nothing."""
    state = StateDir(Path(os.path.realpath(state_dir)))
    with flock(state.clean_lock, fcntl.LOCK_EX):
        return _Clean(state, store, policy, dry_run, time.time() if now is None else now,
                      lock_wait).run()


def schedule(state_dir: Path, store: JobStore, retention: Schedule, log: Callable[[str], None],
             stop: threading.Event) -> threading.Thread:
    """Clean now and then every `retention.every` seconds until `stop` is set, in a daemon
    thread; each clean is logged in one line."""
    def turns() -> None:
        while True:
            try:
                log(f"retention: {clean(state_dir, store, retention.policy).summary()}")
            except (OSError, sqlite3.Error) as err:
                log(f"retention: the clean failed, tried again in {_duration(retention.every)}:"
                    f" {err}")
            if stop.wait(retention.every):
                return

    thread = threading.Thread(target=turns, name="retention", daemon=True)
    thread.start()
    return thread


@dataclass
class _Staged:
    """A staged input: a cache folder or an input-store entry (with the objects it links)."""

    path: Path
    used: float
    bytes: int
    objects: tuple[str, ...] = ()


class _Clean:
    """One clean: each rule removes (or, dry, notes) as it decides, keeping the disk total."""

    def __init__(self, state: StateDir, store: JobStore, policy: Policy, dry_run: bool,
                 now: float, lock_wait: float):
        self.state, self.store, self.policy, self.now = state, store, policy, now
        self.runs, self.cache = state.runs, state.staging_cache
        self.entries, self.objects = state.input_store.entries, state.input_store.objects
        self.dry_run, self.lock_wait = dry_run, lock_wait
        self.report = Report(dry_run, policy.max_disk)
        self.trash: list[Path] = []
        self.total = 0

    def run(self) -> Report:
        jobs = self._jobs()
        folders = self._run_folders(jobs)
        self._forget_old(jobs, folders)
        with flock(self.state.retention_lock, fcntl.LOCK_EX, self.lock_wait) as held:
            jobs = self._jobs()  # again: jobs may have started since; none stages now (held)
            self._sweep_staged(held, jobs)
        self.report.kept += [Item(self._named(self.state.run(job.instance_id).path),
                                  folders[job.instance_id], f"job is {job.status}")
                             for job in jobs
                             if job.status in ACTIVE_STATES and job.instance_id in folders]
        if held:
            self._discard_runs(jobs, folders)
        else:
            staged = f"{self._named(self.cache)}/, {self._named(self.state.input_store.path)}/"
            self.report.kept.append(Item(staged, 0, f"jobs were staging inputs for "
                                         f"more than {self.lock_wait:g} s: no staged input, and "
                                         "no run folder for disk use, was removed this time"))
        for path in self.trash:
            _delete(path)
        self.report.disk = self.total
        return self.report

    def _jobs(self) -> list[Job]:
        """Every job; a `cnvkit-nf run` whose run vanished is failed first (as `list` does)."""
        return [settle(self.store, job) for job in self.store.every()]

    def _named(self, path: Path) -> str:
        """A thing's path as a report names it: relative to the state dir, when in it."""
        return str(path.relative_to(self.state.path)) if path.is_relative_to(
            self.state.path) else str(path)

    def _remove(self, path: Path, size: int, why: str, act: Callable[[], bool]) -> bool:
        """Remove a thing by `act` (False: its job became active, or it went, meanwhile); dry,
        only note it."""
        item = Item(self._named(path), size, why)
        if not self.dry_run and not act():
            self.report.kept.append(Item(item.path, size, "its job became active meanwhile"))
            return False
        self.report.removed.append(item)
        self.total -= size
        return True

    def _away(self, path: Path) -> None:
        """Rename `path` out of sight, whole (deleted at the end); FileNotFoundError if gone."""
        trash = path.with_name(f"{TRASH}{path.name}-{uuid.uuid4().hex[:8]}")
        os.rename(path, trash)
        self.trash.append(trash)

    def _moved(self, path: Path) -> bool:
        try:
            self._away(path)
        except FileNotFoundError:
            return False
        return True

    def _away_run(self, folder: RunFolder) -> None:
        """Move a run folder and its shared part away; FileNotFoundError if neither is there."""
        if not [part for part in folder.parts if self._moved(part)]:
            raise FileNotFoundError(folder.path)

    # --- run folders ------------------------------------------------------------------------

    def _run_folders(self, jobs: list[Job]) -> dict[str, int]:
        """The bytes of each job's run folder with its shared part; leftovers (trash, folders
        without a record older than an hour, in the state dir and the work dir) are
        removed."""
        known, sizes = {job.instance_id for job in jobs}, {}
        for runs in dict.fromkeys([self.runs, self.state.shared_runs]):
            for path in sorted(runs.iterdir()) if runs.is_dir() else []:
                self._run_folder(path, known, sizes)
        return sizes

    def _run_folder(self, path: Path, known: set[str], sizes: dict[str, int]) -> None:
        size = _bytes(path)
        if path.name.startswith(TRASH):
            self._remove(path, size, "left by an interrupted clean",
                         lambda p=path: self._trashed(p))
        elif path.name in known:
            sizes[path.name] = sizes.get(path.name, 0) + size
            self.total += size
        elif path.is_dir() and os.lstat(path).st_mtime < self.now - ORPHAN_SECONDS:
            self._remove(path, size, "a run folder without a job record",
                         lambda p=path: self._moved(p))

    def _trashed(self, path: Path) -> bool:
        self.trash.append(path)
        return True

    def _forget_old(self, jobs: list[Job], folders: dict[str, int]) -> None:
        if self.policy.max_age is None:
            return
        before = int((self.now - self.policy.max_age) * 1000)
        for job in jobs:
            ended = job.end_time or job.created
            if not job.final or ended >= before:
                continue
            folder = self.state.run(job.instance_id)
            why = (f"job {job.status} ended {_when(ended)}, more than "
                   f"{_duration(self.policy.max_age)} ago: forgotten")
            if job.instance_id in folders:
                forgotten = self._remove(folder.path, folders.pop(job.instance_id), why,
                                         lambda j=job, f=folder: self.store.forget(
                                             j.instance_id, before,
                                             lambda: [self._moved(p) for p in f.parts]))
            else:
                forgotten = self.dry_run or self.store.forget(job.instance_id, before)
            if forgotten:
                self.report.forgotten.append(job.instance_id)

    def _discard_runs(self, jobs: list[Job], folders: dict[str, int]) -> None:
        """Remove run folders of final jobs, oldest end first, while over max_disk."""
        if self.policy.max_disk is None:
            return
        ended = sorted((job for job in jobs if job.status in FINAL_STATES
                        and job.instance_id in folders), key=lambda j: j.end_time or j.created)
        for job in ended:
            if self.total <= self.policy.max_disk:
                return
            folder = self.state.run(job.instance_id)
            self._remove(folder.path, folders[job.instance_id],
                         f"disk over {_amount(self.policy.max_disk)}: job {job.status} ended "
                         f"{_when(job.end_time or job.created)}, its record stays",
                         lambda j=job, f=folder: self._discard(j, f))

    def _discard(self, job: Job, folder: RunFolder) -> bool:
        try:
            return self.store.discard_run(job.instance_id, DISCARDED,
                                          lambda: self._away_run(folder))
        except FileNotFoundError:  # gone meanwhile: nothing to note
            return False

    # --- staged inputs ----------------------------------------------------------------------

    def _sweep_staged(self, held: bool, jobs: list[Job]) -> None:
        """Remove leftovers, then staged inputs no active one of `jobs` uses by age, then by
        disk use; only when `held` (no job is staging), else only count them."""
        partial = self._partial() if held else []
        for path in partial:
            size = _bytes(path)
            self.total += size
            self._remove(path, size, "left by an interrupted staging or clean",
                         lambda p=path: self._moved(p))
        staged, objects = self._staged(set(partial))
        self.total += sum(s.bytes for s in staged) + sum(objects.values())
        if not held:
            return
        users = self._users(jobs)
        links = Counter(name for s in staged for name in s.objects)
        for name in sorted(set(objects) - set(links)):
            path = self.objects / name
            self._remove(path, objects.pop(name), "an object no entry links to",
                         lambda p=path: _unlinked(p))
        unused = []
        for item in staged:
            if item.path in users:
                self.report.kept.append(Item(self._named(item.path), item.bytes,
                                             f"used by active job {users[item.path]}"))
            else:
                unused.append(item)
        unused.sort(key=lambda s: s.used)
        for item in unused:
            old = self.policy.max_age is not None and item.used < self.now - self.policy.max_age
            over = self.policy.max_disk is not None and self.total > self.policy.max_disk
            if not (old or over):
                continue
            freed = [name for name in item.objects if links[name] == 1 and name in objects]
            links.subtract(item.objects)
            why = (f"unused since {_when(item.used * 1000)}, more than "
                   f"{_duration(self.policy.max_age)}" if old else
                   f"disk over {_amount(self.policy.max_disk)}: unused since "
                   f"{_when(item.used * 1000)}")
            self._remove(item.path, item.bytes + sum(objects[name] for name in freed), why,
                         lambda i=item, f=tuple(freed): self._staged_away(i, f))

    def _staged_away(self, item: _Staged, objects: tuple[str, ...]) -> bool:
        self._away(item.path)
        for name in objects:
            _unlinked(self.objects / name)
        return True

    def _staged(self, partial: set[Path]) -> tuple[list[_Staged], dict[str, int]]:
        """The cache folders and input-store entries (last used: their mtime) without the
        `partial` files in them, and the bytes of each input-store object that has no other
        link: a hard link to a project's file takes no room, and is kept, since removing it
        would change the file's ctime, and so the identity of the input (`input_store`)."""
        staged = []
        for folder in (self.cache, self.entries):
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name.startswith(".") or not path.is_dir():
                    continue
                links = tuple(os.readlink(link) for link in path.iterdir() if link.is_symlink())
                staged.append(_Staged(path, os.lstat(path).st_mtime, _bytes(path, partial),
                                      tuple(sorted({Path(link).name for link in links
                                                    if Path(link).parent.name
                                                    == self.objects.name}))))
        objects = {path.name: _bytes(path) for path in sorted(self.objects.iterdir())
                   if not path.name.startswith(".") and os.lstat(path).st_nlink == 1
                   } if self.objects.is_dir() else {}
        return staged, objects

    def _partial(self) -> list[Path]:
        """What interrupted staging or cleans left: temporary names beginning with a dot."""
        found = []
        for folder in (self.cache, self.entries, self.objects):
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name.startswith("."):
                    found.append(path)
                elif folder == self.cache and path.is_dir():
                    found += sorted(p for p in path.iterdir() if p.name.startswith("."))
        return found

    def _users(self, jobs: list[Job]) -> dict[Path, str]:
        """The staged inputs active jobs use (named by their params.json or linked from their
        run folder's inputs/), each with one job using it."""
        roots = (self.cache, self.entries)
        users: dict[Path, str] = {}
        for job in jobs:
            if job.status not in ACTIVE_STATES:
                continue
            folder = self.state.run(job.instance_id)
            try:
                names = list(_strings(json.loads(folder.params.read_text())))
            except (FileNotFoundError, json.JSONDecodeError):
                names = []
            names += [str(Path(top) / name) for top, _, files in os.walk(folder.inputs)
                      for name in files]
            for name in names:
                for form in {os.path.realpath(os.path.dirname(name)), os.path.realpath(name)}:
                    for root in roots:
                        parts = Path(form).relative_to(root).parts if Path(form).is_relative_to(
                            root) else ()
                        if parts:
                            users.setdefault(root / parts[0], job.instance_id)
        return users


def _strings(value) -> Iterator[str]:
    """The absolute paths among the strings of a JSON value."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for part in value:
            yield from _strings(part)
    elif isinstance(value, str) and value.startswith("/"):
        yield value


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _unlinked(path: Path) -> bool:
    path.unlink(missing_ok=True)
    return True


def _when(ms: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def _bytes(path: Path, skip: set[Path] = frozenset()) -> int:
    """What removing `path` (but not what it holds in `skip`) would free: the blocks of what it
    holds, a file with links outside it (a hard link to a project's file) not counted."""
    return disk_bytes([path], alone=True, skip=skip)
