"""Run one job's Nextflow: start it (or find the run an earlier process started), follow its
progress into the job's record, and say how it ended (`Ended`).

What happens around the run (inputs staged before, results published and the job's end
recorded after) is `submission.Execution`'s; the CLI (`cnvkit-nf run`) and the job service both
go through it, so a job behaves alike whichever way it was submitted.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cnvkit_nf.launch import nextflow
from cnvkit_nf.pipeline_files import PIPELINE
from cnvkit_nf.state.jobs import FAILED, Failure, IllegalTransition, Job, JobStore
from cnvkit_nf.state.layout import Results, RunFolder

SUPERVISE = Path(__file__).with_name("supervise.py")
DONE_STATES = {"COMPLETED", "CACHED"}
STOP_GRACE_SECONDS = 60
LOG_TAIL_BYTES = 1 << 20  # of Nextflow's log, in a job's log over HTTP


@dataclass
class RunOptions:
    """How to run a job: Nextflow profile, work directory, extra config files, stub mode,
    and whether a finished job keeps its work dir (else deleted once its results are
    published)."""

    profile: str = "local"
    work_dir: Path | None = None
    configs: list[Path] = field(default_factory=list)
    stub: bool = False
    keep_work: bool = False


@dataclass(frozen=True)
class Ended:
    """How a run ended: stopped on request, failed (`failure` says why, `kind` what failed)
    or succeeded."""

    cancelled: bool = False
    failure: str | None = None
    kind: Failure = Failure.WORKFLOW


def tasks_total(results: Path) -> int | None:
    """How many tasks the run has, as the workflow wrote it when it started; None before."""
    try:
        return int(Results(results).tasks_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def trace_rows(trace: Path) -> list[dict[str, str]]:
    """The tasks of Nextflow's trace file so far, one row each; [] before it exists (or while
    it cannot be read)."""
    try:
        with open(trace, newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t"))
    except OSError:
        return []


def tasks_done(trace: Path) -> int:
    """Tasks completed (or taken from the cache) so far, from Nextflow's trace file."""
    return sum(1 for row in trace_rows(trace) if row.get("status") in DONE_STATES)


def failure_message(log_text: str, returncode: int) -> str:
    """The useful part of Nextflow's error report: what failed and the command's error output;
    without a report (Nextflow was killed), its exit status and the last lines of its log."""
    lines = log_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("ERROR ~")), None)
    if start is None:
        tail = " | ".join([line for line in lines if line.strip()][-3:])
        return (f"Nextflow ended ({exit_description(returncode)}) without an error report"
                + (f"; the last lines of its log: {tail}" if tail else ""))
    message = [lines[start].removeprefix("ERROR ~").strip()]
    for marker in ("Command error:", "Caused by:"):
        if marker in lines[start:]:
            at = lines.index(marker, start)
            block = []
            for line in lines[at + 1:]:
                if not line.strip() and block:
                    break
                if line.strip():
                    block.append(line.strip())
            message += block[-12:]
            break
    return "\n".join(message)


class JobRun:
    """One Nextflow run of a job, in its own process group so that it can be stopped whole.

    Nextflow runs under `supervise`, which writes its exit status into the run folder: a run
    started by an earlier process (a job service killed and restarted) can be attached to by its
    PID and still be finished properly.
    """

    def __init__(self, store: JobStore, job: Job, params: dict, options: RunOptions,
                 cancelled: threading.Event | None = None):
        self.store, self.job, self.params, self.options = store, job, params, options
        self.folder = RunFolder(job.run_dir)
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        # whether the job is cancelled: the flag of its `submission.Execution`, which sets it
        # and stops the run (`stop`); `wait` and `ended` only read it
        self.cancelled = cancelled if cancelled is not None else threading.Event()

    @property
    def trace(self) -> Path:
        return Results(Path(self.params["output_dir"])).trace

    @property
    def exit_file(self) -> Path:
        return self.folder.exit_file

    def command(self, executable: str) -> list[str]:
        """The `nextflow run` command line of this job (its params file is in the run folder).

        A run folder that already holds a Nextflow session is resumed: finished tasks are reused.
        """
        work = work_dir(self.options, self.folder).path
        command = [executable, "run", str(PIPELINE / "main.nf"),
                   "-params-file", str(self.folder.params),
                   "-profile", self.options.profile, "-work-dir", str(work), "-ansi-log", "false"]
        for config in self.options.configs:
            command += ["-c", str(config)]
        if self.options.stub:
            command.append("-stub-run")
        resume = self.folder.history.exists()
        return command + (["-resume"] if resume else [])

    def start(self) -> None:
        """Start Nextflow and mark the job RUNNING."""
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.folder.params.write_text(json.dumps(self.params, indent=2) + "\n")
        self.exit_file.unlink(missing_ok=True)
        env = {**os.environ, "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        supervisor = [sys.executable, str(SUPERVISE), str(self.exit_file)]
        with open(self.folder.nextflow_log, "wb") as log:
            self.process = subprocess.Popen(
                supervisor + self.command(nextflow.ensure(log=lambda m: None)),
                cwd=self.folder.path, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid = self.process.pid
        self.job = self.store.start(self.job.instance_id, self.pid, self.job.attempts + 1)

    def attach(self) -> bool:
        """Follow the run started earlier for this job, if it is still running."""
        try:
            recorded = int(self.folder.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            recorded = None
        for pid in {self.job.pid, recorded} - {None}:
            if running(pid, self.exit_file):
                self.pid = pid
                self.job = self.store.follow(self.job.instance_id, pid)
                return True
        return False

    def stop(self) -> None:
        """Ask Nextflow to stop (it stops its tasks)."""
        if self._running():
            os.killpg(self.pid, signal.SIGTERM)

    def _running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and running(self.pid, self.exit_file)

    def wait(self, on_progress: Callable[[Job], None] = lambda job: None,
             poll_seconds: float = 1.0) -> Ended:
        """Follow the run until Nextflow exits (at once when it has), recording its progress
        from its trace; how it ended."""
        if self.cancelled.is_set():
            self.stop()
        cancel_deadline = None
        while self._running():
            self._record_progress(on_progress)
            if self.cancelled.is_set():
                cancel_deadline = cancel_deadline or time.monotonic() + STOP_GRACE_SECONDS
                if time.monotonic() > cancel_deadline:
                    os.killpg(self.pid, signal.SIGKILL)
            time.sleep(poll_seconds)
        self._record_progress(on_progress)
        return self.ended()

    def _record_progress(self, on_progress: Callable[[Job], None]) -> None:
        done = tasks_done(self.trace)
        total = max(tasks_total(Path(self.params["output_dir"])) or self.job.tasks_total, done)
        if (done, total) != (self.job.tasks_done, self.job.tasks_total):
            self.job = self.store.progress(self.job.instance_id, done, total)
        on_progress(self.job)

    def exit_status(self) -> int | None:
        """Nextflow's exit status as its supervisor recorded it; None if it never could."""
        try:
            return int(self.exit_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def ended(self) -> Ended:
        """How the run ended, from its supervisor's record and Nextflow's log."""
        if self.cancelled.is_set():
            return Ended(cancelled=True)
        returncode = self.exit_status()
        if returncode is None:
            return Ended(failure="Nextflow was killed before it could end the run",
                         kind=Failure.SYSTEM)
        if returncode != 0:
            log = self.folder.nextflow_log.read_text(errors="replace")
            return Ended(failure=failure_message(log, returncode))
        return Ended()


TASK_FOLDER = re.compile(r"[0-9a-f]{2}/[0-9a-f]{30}")  # <work dir>/ab/cdef..., as Nextflow names it


@dataclass(frozen=True)
class WorkDir:
    """The Nextflow work dir of one job's run: its run folder's work/, the run's alone, or an
    operator's `run --nextflow-work-dir`, which several runs may share: of that one, only the
    task folders this run's trace lists (any attempt, any session of its run folder) are the
    run's."""

    path: Path
    own: bool
    trace: Path

    def parts(self) -> list[Path]:
        """What of the work dir is this run's: the whole folder, or its task folders."""
        if self.own:
            return [self.path] if self.path.is_dir() else []
        found = {"/".join(Path(row.get("workdir", "")).parts[-2:])
                 for row in trace_rows(self.trace)}
        return [self.path / name for name in sorted(found) if TASK_FOLDER.fullmatch(name)
                and os.path.lexists(self.path / name)]

    def files(self) -> set[tuple[int, int]]:
        """The (device, inode) of each regular file of this run's part, no link followed."""
        return {(info.st_dev, info.st_ino) for info, _ in _inodes(self.parts())
                if stat.S_ISREG(info.st_mode)}

    def size(self) -> int:
        """The bytes deleting this run's part would free (`disk_bytes`, `alone`)."""
        return disk_bytes(self.parts(), alone=True)

    def drop(self) -> None:
        """Delete this run's part, never following a link out of it: a work dir (or a task
        folder, or the folder above it) that is a link is left."""
        if self.own:
            with _folder(self.path.parent) as above:
                shutil.rmtree(self.path.name, dir_fd=above)
            return
        for task in self.parts():
            with _folder(task.parent) as above:
                shutil.rmtree(task.name, dir_fd=above)
                try:
                    os.rmdir(task.parent)
                except OSError:
                    pass  # other runs' task folders share it


def work_dir(options: RunOptions, folder: RunFolder) -> WorkDir:
    """The work dir of a job's run: the operator's `--nextflow-work-dir`, else the run
    folder's."""
    return WorkDir(options.work_dir or folder.work, options.work_dir is None,
                   folder.results.trace)


def disk_bytes(paths: Iterable[Path], alone: bool = False,
               skip: Collection[Path] = frozenset()) -> int:
    """The bytes the files and folders under `paths` (but not what they hold in `skip`) keep
    on disk: each inode once (hard links count once), no link followed, what is missing
    counted as nothing. With `alone`, only what deleting them would free: a file with a link
    elsewhere is not counted."""
    return sum(info.st_blocks * 512 for info, names in _inodes(paths, skip)
               if not alone or names >= info.st_nlink or stat.S_ISDIR(info.st_mode))


def _inodes(paths: Iterable[Path],
            skip: Collection[Path] = frozenset()) -> list[tuple[os.stat_result, int]]:
    """Each inode under `paths` (but not in `skip`) once (files, folders) with its names
    there, no link followed."""
    seen: dict[tuple[int, int], list] = {}
    pending = list(paths)
    while pending:
        current = pending.pop()
        try:
            info = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            continue
        seen.setdefault((info.st_dev, info.st_ino), [info, 0])[1] += 1
        if stat.S_ISDIR(info.st_mode):
            try:
                pending += [path for entry in os.scandir(current)
                            if (path := Path(entry.path)) not in skip]
            except OSError:
                pass
    return [(info, names) for info, names in seen.values()]


@contextmanager
def _folder(path: Path) -> Iterator[int]:
    """An open folder (not a link) to delete a name in, closed when the block ends."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield fd
    finally:
        os.close(fd)


def job_log(job: Job, tail_bytes: int = LOG_TAIL_BYTES) -> dict:
    """What a job's run left to read: the end of Nextflow's log, its error report in full
    (from its `ERROR ~` line; else the job's message), and the error output of each failed
    task (the end of it). Files are read only inside the job's run folder (a task's, inside
    its shared part), never through a link."""
    folder = RunFolder(job.run_dir) if job.run_dir else None
    run_dir = folder.path if folder else None
    log, truncated = _tail(run_dir, folder.nextflow_log, tail_bytes) if folder else ("", False)
    report = log[log.find("ERROR ~"):] if "ERROR ~" in log else None
    failed = []
    if folder is not None:
        for row in trace_rows(folder.results.trace):
            if row.get("status") == "FAILED":  # its error output, else (as Nextflow shows
                workdir = Path(row.get("workdir", ""))  # it) the task wrapper's output
                stderr, cut = _tail(folder.shared, workdir / ".command.err", tail_bytes // 16)
                if not stderr:
                    stderr, cut = _tail(folder.shared, workdir / ".command.log",
                                        tail_bytes // 16)
                failed.append({"name": row.get("name"), "exit": row.get("exit"),
                               "stderr": stderr, "stderr_truncated": cut})
    return {"instance_id": job.instance_id, "status": job.status, "message": job.message,
            "warnings": job.warnings,
            "failure": report or (job.message if job.status == FAILED else None),
            "failure_kind": job.failure,
            "failed_tasks": failed, "log": log, "log_truncated": truncated}


def _tail(inside: Path, path: Path, size: int) -> tuple[str, bool]:
    """The last `size` bytes of a file in the folder `inside` (as text), and whether the file
    was longer; ("", False) when it is missing, elsewhere, or a link."""
    try:
        if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(inside)):
            return "", False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return "", False
    text, length = read_tail(fd, size)
    return text, length > size


def read_tail(fd: int, size: int) -> tuple[str, int]:
    """The last `size` bytes of an open file (as text; it is closed) and its whole length."""
    with os.fdopen(fd, "rb") as handle:
        length = os.fstat(fd).st_size
        handle.seek(max(0, length - size))
        return handle.read(size).decode("utf-8", errors="replace"), length


def exit_description(returncode: int) -> str:
    """How a process ended, from its status as `subprocess` or a shell reports it:
    `killed by signal 9, SIGKILL`, `exit status 137: killed by signal 9, SIGKILL`."""
    number = -returncode if returncode < 0 else returncode - 128
    try:
        killed = f"killed by signal {number}, {signal.Signals(number).name}"
    except ValueError:
        killed = ""
    if returncode < 0:
        return killed or f"killed by signal {number}"
    return f"exit status {returncode}" + (f": {killed}" if returncode > 128 and killed else "")


def exit_file(run_dir: Path) -> Path:
    """Where the supervisor of a run folder's Nextflow writes its exit status."""
    return RunFolder(run_dir).exit_file


def settle(store: JobStore, job: Job) -> Job:
    """A `cnvkit-nf run` job whose run vanished without recording an end (its launcher was
    killed) is failed, once, with its end time: `status` and `list` show it alike."""
    if job.runner == "cli" and not job.final and job.pid and not run_alive(job):
        try:
            return store.fail(job.instance_id, "the run stopped without reporting an end "
                                               "(launcher killed?)", Failure.SYSTEM)
        except IllegalTransition:  # it ended meanwhile
            return store.get(job.instance_id)
    return job


def run_alive(job: Job) -> bool:
    """Whether the job's Nextflow run (its supervisor) is still running."""
    return bool(job.pid and job.run_dir) and running(job.pid, exit_file(job.run_dir))


def running(pid: int, exit_file: Path) -> bool:
    """Whether `pid` is a live (not zombie) supervisor of the run that writes `exit_file`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and os.fsencode(str(exit_file)) in cmdline
