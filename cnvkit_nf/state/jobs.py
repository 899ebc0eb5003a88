"""Durable job records in SQLite: one row per job, every change committed before it is reported.

The store is the one owner of a job's state: it moves only through the named transitions of
`JobStore` (start, follow, progress, finish, fail, request_cancel, withdraw, cancelled, retry;
forget and discard_run for `retention`), each one atomic, setting the times that go with it and
refusing a move its state does not allow (`IllegalTransition`).

    start           LAUNCHING, RUNNING (run again after a restart) -> RUNNING
    follow          LAUNCHING, RUNNING -> RUNNING (a run started earlier; CANCELING stays)
    progress        any state not ended: tasks done and expected
    finish          RUNNING, CANCELING -> FINISHED
    fail            LAUNCHING, RUNNING, CANCELING -> FAILED, with its kind (`Failure`)
    request_cancel  LAUNCHING, RUNNING -> CANCELING
    withdraw        LAUNCHING -> CANCELLED (a job still waiting for its turn)
    cancelled       LAUNCHING, RUNNING, CANCELING -> CANCELLED
    retry           FINISHED, FAILED, CANCELLED -> LAUNCHING
    forget          FINISHED, FAILED, CANCELLED -> no record (with its run folder)
    discard_run     FINISHED, FAILED, CANCELLED stays, its run folder removed (a warning says so)

A job's `message` is the reason it failed, and null in every other state; what a job that did
not fail has to say (a reference reused, a bin size warned of, a cancel) is in its `warnings`.

A job records its `destination`, the folder it publishes into: while it has not ended, no
other job of its project may be created or retried with a destination that is the same folder,
or inside or around it (`Occupied`), so that two jobs' results never interleave.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path

LAUNCHING, RUNNING, FINISHED, FAILED, CANCELLED, CANCELING = (
    "LAUNCHING", "RUNNING", "FINISHED", "FAILED", "CANCELLED", "CANCELING",
)
FINAL_STATES = frozenset({FINISHED, FAILED, CANCELLED})
ACTIVE_STATES = frozenset({LAUNCHING, RUNNING, CANCELING})
CANCELLED_ON_REQUEST = "cancelled on request"
# Fields only the transitions set.
_STATE_FIELDS = frozenset({"status", "start_time", "end_time", "attempts", "failure"})


class Failure(StrEnum):
    """Why a job FAILED, for clients that must tell failures apart (`Job.failure`)."""

    WORKFLOW = "workflow"  # its pipeline run failed (a task, CNVkit, Nextflow's checks)
    REFUSED = "refused"  # its inputs or the service's rules refused it when its turn came
    SYSTEM = "system"  # the service or its machine failed it (staging, publishing, a crash)


class IllegalTransition(Exception):
    """A job was asked to move where its state does not allow."""


class Occupied(Exception):
    """Another job of the same project that has not ended publishes into the same folder (or
    one inside or around it): `job`."""

    def __init__(self, job: Job):
        super().__init__(f"job {job.instance_id} ({job.status}) publishes into "
                         f"{job.request.get('output_dir')}")
        self.job = job

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    instance_id    TEXT PRIMARY KEY,
    project        TEXT NOT NULL,
    owner          TEXT NOT NULL,
    status         TEXT NOT NULL,
    request        TEXT NOT NULL,
    created        INTEGER NOT NULL,
    start_time     INTEGER,
    end_time       INTEGER,
    tasks_done     INTEGER NOT NULL DEFAULT 0,
    tasks_total    INTEGER NOT NULL DEFAULT 0,
    message        TEXT,
    pid            INTEGER,
    run_dir        TEXT,
    runner         TEXT NOT NULL DEFAULT 'cli',
    attempts       INTEGER NOT NULL DEFAULT 0,
    destination    TEXT,
    failure        TEXT,
    samplesheet    TEXT,
    warnings       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs (project, created);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (runner, status, created);
"""
# Columns added after the first release: added to older databases when they are opened.
_ADDED_COLUMNS = {
    "runner": "TEXT NOT NULL DEFAULT 'cli'",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "destination": "TEXT",
    "failure": "TEXT",
    "samplesheet": "TEXT",
    "warnings": "TEXT",
}


def now_ms() -> int:
    """The current time in Unix milliseconds."""
    return int(time.time() * 1000)


@dataclass
class Job:
    """One job as stored."""

    instance_id: str
    project: str
    owner: str
    status: str
    request: dict
    created: int
    start_time: int | None = None
    end_time: int | None = None
    tasks_done: int = 0
    tasks_total: int = 0
    message: str | None = None
    pid: int | None = None
    run_dir: str | None = None
    runner: str = "cli"  # who runs it: "cli" (cnvkit-nf run) or "service" (cnvkit-nf serve)
    attempts: int = 0  # Nextflow runs since it was submitted or retried (>1 after restarts)
    destination: str | None = None  # the folder it publishes into, as `Occupied` compares
    failure: Failure | None = None  # why it FAILED; None in every other state
    samplesheet: str | None = None  # the text its request's samplesheet had when submitted
    warnings: list[str] = field(default_factory=list)  # notices of a run (none is a failure)

    @property
    def progress(self) -> str:
        """Tasks done over tasks expected, e.g. "3/21"."""
        return f"{self.tasks_done}/{self.tasks_total}"

    @property
    def duration(self) -> int:
        """Seconds from submission until the job ended, or until now."""
        return max(0, ((self.end_time or now_ms()) - self.created) // 1000)

    def instance(self) -> dict:
        """The job as the family's query API shows it: the request's fields, then the job's
        (`start_time` is when it was submitted)."""
        return {**self.request, "instance_id": self.instance_id, "owner": self.owner,
                "status": self.status, "start_time": self.created, "duration": self.duration,
                "progress": self.progress, "message": self.message, "warnings": self.warnings}

    @property
    def final(self) -> bool:
        """Whether the job reached FINISHED, FAILED or CANCELLED."""
        return self.status in FINAL_STATES


_COLUMNS = [f.name for f in fields(Job)]


class JobStore:
    """Jobs in an SQLite database (WAL mode), safe to share between processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, declaration in _ADDED_COLUMNS.items():
                if present and name not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(self, request: dict, *, project: str = "local", owner: str = "local",
               tasks_total: int = 0, runs_in: Path | None = None, runner: str = "cli",
               destination: str | None = None, samplesheet: str | None = None) -> Job:
        """Record a new LAUNCHING job with a fresh UUID; its run folder is `runs_in/<id>`.
        Raises Occupied when a job that has not ended publishes where it would."""
        instance_id = str(uuid.uuid4())
        run_dir = str(Path(runs_in) / instance_id) if runs_in else None
        job = Job(instance_id, project, owner, LAUNCHING, request, now_ms(),
                  tasks_total=tasks_total, run_dir=run_dir, runner=runner,
                  destination=destination, samplesheet=samplesheet)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the check and the insert
            self._check_free(db, job)
            marks = ", ".join("?" * len(_COLUMNS))
            db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [_to_column(name, getattr(job, name)) for name in _COLUMNS],
            )
        return job

    def get(self, instance_id: str, db: sqlite3.Connection | None = None) -> Job | None:
        """The job with this id, or None (read in `db`'s transaction when given)."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE instance_id = ?"
        if db is not None:
            row = db.execute(query, (instance_id,)).fetchone()
        else:
            with self._connect() as own:
                row = own.execute(query, (instance_id,)).fetchone()
        return _from_row(row) if row else None

    def warn(self, instance_id: str, *notes: str) -> Job:
        """Add to a job's warnings those of `notes` it does not have yet, in order."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the read and the write
            job = self.get(instance_id, db)
            if job is None:
                raise KeyError(instance_id)
            new = [note for note in dict.fromkeys(notes) if note not in job.warnings]
            if new:
                db.execute("UPDATE jobs SET warnings = ? WHERE instance_id = ?",
                           (_to_column("warnings", job.warnings + new), instance_id))
        return self.get(instance_id)

    def update(self, instance_id: str, **changes) -> Job:
        """Change fields of a job other than its state (message, pid, progress...) and
        return it as stored; its state changes through the transitions below."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        if _STATE_FIELDS & set(changes):
            raise ValueError(f"{sorted(_STATE_FIELDS & set(changes))}: set by the job's "
                             "transitions (start, finish, fail, ...), not by update")
        return self._set(instance_id, **changes)

    def _set(self, instance_id: str, **changes) -> Job:
        with self._connect() as db:
            db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in changes)} WHERE instance_id = ?",
                [_to_column(k, v) for k, v in changes.items()] + [instance_id],
            )
        job = self.get(instance_id)
        if job is None:
            raise KeyError(instance_id)
        return job

    # --- transitions ----------------------------------------------------------------------

    def start(self, instance_id: str, pid: int, attempts: int) -> Job:
        """A run of the job began (its `attempts`-th): RUNNING from LAUNCHING, or from
        RUNNING when a restarted service runs it again."""
        return self._move(instance_id, {LAUNCHING, RUNNING}, "start", status=RUNNING, pid=pid,
                          start_time=now_ms(), end_time=None, message=None, warnings=[],
                          attempts=attempts)

    def follow(self, instance_id: str, pid: int) -> Job:
        """A run started earlier is followed again (after a restart): RUNNING with its pid,
        unless it is being cancelled."""
        job = self._move(instance_id, {CANCELING}, "follow", pid=pid, quiet=True)
        return job or self._move(instance_id, {LAUNCHING, RUNNING}, "follow", status=RUNNING,
                                 pid=pid)

    def progress(self, instance_id: str, done: int, total: int) -> Job:
        """Tasks done of those expected, while the job has not ended (after, unchanged)."""
        return self._move(instance_id, ACTIVE_STATES, "record progress of", quiet=True,
                          tasks_done=done, tasks_total=total) or self.get(instance_id)

    def finish(self, instance_id: str) -> Job:
        """The run succeeded and its results are published: FINISHED."""
        return self._move(instance_id, {RUNNING, CANCELING}, "finish", status=FINISHED,
                          end_time=now_ms())

    def fail(self, instance_id: str, message: str, failure: Failure) -> Job:
        """The job cannot end well, for the reason given, of the kind given: FAILED."""
        return self._move(instance_id, ACTIVE_STATES, "fail", status=FAILED, end_time=now_ms(),
                          message=message, failure=Failure(failure))

    def request_cancel(self, instance_id: str) -> Job | None:
        """Ask a job that has not ended to stop: CANCELING until its run has stopped. None
        when it has ended or is already being cancelled."""
        return self._move(instance_id, {LAUNCHING, RUNNING}, "cancel", status=CANCELING,
                          quiet=True)

    def withdraw(self, instance_id: str) -> Job | None:
        """Cancel a job still waiting for its turn: CANCELLED at once. None when it is not
        waiting (any more)."""
        return self._move(instance_id, {LAUNCHING}, "withdraw", status=CANCELLED,
                          end_time=now_ms(), warnings=[CANCELLED_ON_REQUEST], quiet=True)

    def cancelled(self, instance_id: str) -> Job:
        """The job stopped on request (or never started): CANCELLED."""
        return self._move(instance_id, ACTIVE_STATES, "mark cancelled", status=CANCELLED,
                          end_time=now_ms(), message=None, warnings=[CANCELLED_ON_REQUEST])

    def retry(self, instance_id: str) -> Job:
        """An ended job is to run again (its finished tasks are reused): LAUNCHING, its end,
        message, warnings and count of runs cleared. Raises Occupied like `create`."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the checks and the move
            job = self.get(instance_id, db)
            if job is None or not job.final:
                raise IllegalTransition(f"cannot retry job {instance_id}: it is "
                                        f"{job.status if job else 'not recorded'}")
            self._check_free(db, job)
            db.execute("UPDATE jobs SET status = ?, end_time = NULL, message = NULL, "
                       "warnings = NULL, failure = NULL, attempts = 0 WHERE instance_id = ?",
                       (LAUNCHING, instance_id))
        return self.get(instance_id)

    def _check_free(self, db: sqlite3.Connection, job: Job) -> None:
        """Raise Occupied when another job of `job`'s project that has not ended publishes
        into `job`'s destination, or a folder inside or around it. Other projects' jobs are
        never compared: their local destinations lie in folders only they write into
        (`service.config`), and a refusal would tell where they publish."""
        if job.destination is None:
            return
        rows = db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE destination IS NOT NULL "
            "AND project = ? AND instance_id != ? "
            f"AND status IN ({', '.join('?' * len(ACTIVE_STATES))})",
            [job.project, job.instance_id, *ACTIVE_STATES]).fetchall()
        for other in map(_from_row, rows):
            if other.destination.startswith(job.destination) or \
                    job.destination.startswith(other.destination):
                raise Occupied(other)

    def _move(self, instance_id: str, from_states: set[str], verb: str, quiet: bool = False,
              **changes) -> Job | None:
        """Apply `changes` only if the job is in one of `from_states`, atomically; else
        None (`quiet`) or IllegalTransition."""
        marks = ", ".join("?" * len(from_states))
        with self._connect() as db:
            changed = db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in changes)} "
                f"WHERE instance_id = ? AND status IN ({marks})",
                [_to_column(k, v) for k, v in changes.items()] + [instance_id, *from_states],
            ).rowcount
        if changed:
            return self.get(instance_id)
        if quiet:
            return None
        job = self.get(instance_id)
        raise IllegalTransition(f"cannot {verb} job {instance_id}: it is "
                                f"{job.status if job else 'not recorded'}")

    def forget(self, instance_id: str, ended_before: int,
               then: Callable[[], object] = lambda: None) -> bool:
        """Delete the record of a job that ended before `ended_before` (Unix ms; an old record
        without an end: submitted before), and do `then` (its run folder moved away) in the
        same write transaction: a retry waits, then finds no job. False when it is no such job
        (any more); when `then` raises, the record stays."""
        finals = ", ".join("?" * len(FINAL_STATES))
        with self._connect() as db:
            gone = db.execute(f"DELETE FROM jobs WHERE instance_id = ? AND status IN ({finals}) "
                              "AND COALESCE(end_time, created) < ?",
                              [instance_id, *FINAL_STATES, ended_before]).rowcount
            if gone:
                then()
        return bool(gone)

    def discard_run(self, instance_id: str, note: str, then: Callable[[], object]) -> bool:
        """Add `note` to an ended job's warnings and do `then` (its run folder moved away) in
        the same write transaction: a retry waits, then runs afresh. False when the job has not
        ended (any more); when `then` raises, nothing changes."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the read and the write
            job = self.get(instance_id, db)
            changed = job is not None and job.final
            if changed:
                db.execute("UPDATE jobs SET warnings = ? WHERE instance_id = ?",
                           (_to_column("warnings", [*job.warnings, note]), instance_id))
                then()
        return bool(changed)

    def every(self) -> list[Job]:
        """Every job, in the order they were recorded."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY rowid").fetchall()
        return [_from_row(row) for row in rows]

    def unfinished(self, runner: str) -> list[Job]:
        """Jobs of a runner that have not ended, in the order they were recorded."""
        finals = ", ".join("?" * len(FINAL_STATES))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE runner = ? "
                f"AND status NOT IN ({finals}) ORDER BY rowid",
                [runner, *FINAL_STATES],
            ).fetchall()
        return [_from_row(row) for row in rows]

    def count(self, runner: str, status: str) -> int:
        """How many jobs of a runner are in a state."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE runner = ? AND status = ?",
                              (runner, status)).fetchone()[0]

    def list(self, project: str | list[str] = "local", *, instance_id: str | None = None,
             start: int | None = None, end: int | None = None, runner: str | None = None,
             limit: int = 10, offset: int = 0, after: tuple[int, str] | None = None
             ) -> tuple[int, list[Job]]:
        """A page of a project's (or projects') jobs, newest first, and how many match in all.

        `start`/`end` (Unix ms) keep jobs submitted at or after / at or before them, as in the
        family's query API (a job's `start_time` there is its submission time). `after`, a
        job's (created, instance_id), keeps only the jobs after it (a page that stays put
        however many jobs are submitted meanwhile; were that job deleted since, those of its
        `created` are all kept).
        """
        projects = [project] if isinstance(project, str) else list(project)
        where, args = [f"project IN ({', '.join('?' * len(projects))})"], [*projects]
        for clause, value in (("instance_id = ?", instance_id), ("created >= ?", start),
                              ("created <= ?", end), ("runner = ?", runner)):
            if value is not None:
                where.append(clause)
                args.append(value)
        condition = " AND ".join(where)
        page = condition + (" AND (created, rowid) < (?, COALESCE((SELECT rowid FROM jobs "
                            f"WHERE instance_id = ?), {(1 << 63) - 1}))" if after else "")
        with self._connect() as db:
            count = db.execute(f"SELECT COUNT(*) FROM jobs WHERE {condition}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE {page} "
                "ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                [*args, *(after or ()), limit, offset],
            ).fetchall()
        return count, [_from_row(row) for row in rows]

    def latest_for_request(self, request: dict, project: str = "local") -> Job | None:
        """The newest job of a project whose request is identical to this one."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE project = ? AND request = ? "
                "ORDER BY created DESC LIMIT 1",
                (project, _to_column("request", request)),
            ).fetchone()
        return _from_row(row) if row else None


def _to_column(name: str, value):
    if name == "request":
        return json.dumps(value, sort_keys=True)
    if name == "warnings":
        return json.dumps(value) if value else None
    return value.value if isinstance(value, Failure) else value


def _from_row(row) -> Job:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["request"] = json.loads(values["request"])
    values["failure"] = values["failure"] and Failure(values["failure"])
    values["warnings"] = json.loads(values["warnings"] or "[]")
    return Job(**values)
