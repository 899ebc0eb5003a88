"""Where the job system keeps its files: the parts of a state dir, of its work dir, of a job's
run folder and of a run's results, named here once for every module that reads or writes them.

The state dir is the service host's (its local disk): the job records and every lock, which
SQLite (WAL) and flock need a local file system for, and what Nextflow's head process reads
and writes. The work dir is what the cluster's nodes must see too (the shared file system):
Nextflow's task folders, the results they are published into, staged inputs, kept references.
Without one (`cnvkit-nf --work-dir`) the state dir is its own work dir, holding everything.

    <state dir>/              `cnvkit-nf --state-dir`, default ~/.cnvkit-nf (`StateDir`)
      jobs.sqlite             the job records (`jobs.JobStore`)
      work-dir.json           the work dir chosen for it, if one was (`open_state`)
      runs/<instance id>/     a job's run folder (`RunFolder`), what Nextflow's head keeps
      service.lock            flock: held by the one `cnvkit-nf serve` of the state dir
      retention.lock          flock: shared from the start of a job's staging until its run
                              started, exclusive while retention sweeps staged inputs
      clean.lock              flock: held by the one clean under way (`service.retention`)
      locks/<kind>/<project>/<key>.lock
                              flock of a kept reference or accessible regions
                              (`reference.entries`: <kind> is references or access)

    <work dir>/               `cnvkit-nf --work-dir`, recorded once; default the state dir
      state-dir.json          the state dir it serves (host and path; `open_state`)
      runs/<instance id>/     the run folder's shared part (`RunFolder.shared`)
      cache/<identity>/       object-storage inputs downloaded for jobs (`storage.objects`)
      inputs/                 the job service's private inputs (`InputStoreFolder`)
      references/             references kept between a project's jobs (`reference.cache`)
      access/                 accessible regions kept between a project's jobs
                              (`reference.access`)

    runs/<instance id>/       Nextflow's launch directory (its .nextflow/ cache is LevelDB)
      params.json             the Nextflow params, written as the run starts: they name the
                              staged inputs the run reads
      nextflow.out            Nextflow's console output
      nextflow.exitcode       its exit status, written (through nextflow.exitcode.part) by its
                              supervisor, `launch/supervise.py`
      nextflow.pid            the supervisor's PID: the exit file's ".pid" sibling, which
                              supervise.py (run as a script, without this package) derives itself
      .nextflow/history       Nextflow's session history: a run folder holding one is resumed
    its shared part (the same folder without a work dir):
      inputs/                 links into cache/ of the job's object-storage inputs
      work/                   Nextflow's work dir (unless `run --nextflow-work-dir`)
      results/                the run's output_dir (`Results`), published from there

The pipeline writes into any output_dir, and so into results/ (`Results`):
      pipeline_info/trace.tsv   Nextflow's trace (nextflow.config: `trace.file`)
      pipeline_info/tasks.txt   how many tasks the run has, as it starts (workflows/cnvkit.nf)
      reference/                the pooled reference built (modules/cnvkit/reference/main.nf)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

DEFAULT_STATE_DIR = Path.home() / ".cnvkit-nf"
RUNS = "runs"
OWNER_RECORD = "state-dir.json"  # in a work dir: the state dir it serves
# file systems shared over a network, where SQLite (WAL) and flock may not hold
NETWORK_FILE_SYSTEMS = {"nfs", "nfs4", "lustre", "cifs", "smb3", "gpfs", "beegfs", "ceph",
                        "glusterfs", "fuse.glusterfs", "fuse.sshfs", "panfs", "9p"}


class LayoutError(Exception):
    """A state dir and a work dir cannot be used together; the message says why."""


@dataclass(frozen=True)
class Results:
    """An output_dir as the pipeline writes it: a run folder's results/, or a published copy."""

    path: Path

    @property
    def trace(self) -> Path:
        return self.path / "pipeline_info" / "trace.tsv"

    @property
    def tasks_file(self) -> Path:
        return self.path / "pipeline_info" / "tasks.txt"

    @property
    def reference(self) -> Path:
        return self.path / "reference"

    @property
    def bin_sizes(self) -> Path:
        """The bin sizes the regions stage chose, and its warnings (`bin/bin_sizes.py`)."""
        return self.reference / "bin_sizes.json"


@dataclass(frozen=True)
class RunFolder:
    """A job's run folder (`Job.run_dir`, in its state dir's runs/), and its shared part."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a job records it as a string

    @cached_property
    def shared(self) -> Path:
        """Where the run's tasks see its files: runs/<instance id> of the work dir of the
        state dir holding the run folder; the run folder itself without a work dir."""
        if self.path.parent.name != RUNS:
            return self.path
        return StateDir(self.path.parent.parent).shared_runs / self.path.name

    @property
    def parts(self) -> list[Path]:
        """The run folder and its shared part, once each."""
        return list(dict.fromkeys([self.path, self.shared]))

    @property
    def params(self) -> Path:
        return self.path / "params.json"

    @property
    def nextflow_log(self) -> Path:
        """Nextflow's console output (its stdout and stderr)."""
        return self.path / "nextflow.out"

    @property
    def nextflow_own_log(self) -> Path:
        """The log Nextflow writes in its launch dir."""
        return self.path / ".nextflow.log"

    @property
    def exit_file(self) -> Path:
        return self.path / "nextflow.exitcode"

    @property
    def pid_file(self) -> Path:
        return self.exit_file.with_suffix(".pid")

    @property
    def history(self) -> Path:
        return self.path / ".nextflow" / "history"

    @property
    def inputs(self) -> Path:
        return self.shared / "inputs"

    @property
    def work(self) -> Path:
        return self.shared / "work"

    @property
    def results(self) -> Results:
        return Results(self.shared / "results")


@dataclass(frozen=True)
class InputStoreFolder:
    """The private input store (`launch.input_store`): objects, the files themselves; entries,
    folders of links to them named as requests name the files."""

    path: Path

    @property
    def objects(self) -> Path:
        return self.path / "objects"

    @property
    def entries(self) -> Path:
        return self.path / "entries"

    def object_link(self, name: str) -> Path:
        """What a file of an entry (entries/<identity>/<name>) links to for the object `name`:
        a relative path."""
        return Path("..", "..", self.objects.name, name)


@dataclass(frozen=True)
class StateDir:
    """A state dir: the job records, run folders and locks; and its work dir's parts."""

    path: Path

    @cached_property
    def work(self) -> Path:
        """The work dir the state dir records (`open_state`), else the state dir itself."""
        return recorded_work(self.path) or self.path

    # --- on the service host's disk ---------------------------------------------------------

    @property
    def jobs_db(self) -> Path:
        return self.path / "jobs.sqlite"

    @property
    def work_record(self) -> Path:
        return self.path / "work-dir.json"

    @property
    def runs(self) -> Path:
        return self.path / RUNS

    def run(self, instance_id: str) -> RunFolder:
        return RunFolder(self.runs / instance_id)

    @property
    def service_lock(self) -> Path:
        return self.path / "service.lock"

    @property
    def retention_lock(self) -> Path:
        return self.path / "retention.lock"

    @property
    def clean_lock(self) -> Path:
        return self.path / "clean.lock"

    def entry_locks(self, kind: str) -> Path:
        """The folder of the flocks of the kept entries of `kind` (references, access)."""
        return self.path / "locks" / kind

    # --- in the work dir, which the cluster's nodes see -------------------------------------

    @property
    def shared_runs(self) -> Path:
        return self.work / RUNS

    @property
    def staging_cache(self) -> Path:
        return self.work / "cache"

    @property
    def input_store(self) -> InputStoreFolder:
        return InputStoreFolder(self.work / "inputs")

    @property
    def references(self) -> Path:
        return self.work / "references"

    @property
    def access(self) -> Path:
        return self.work / "access"

    @property
    def shared_parts(self) -> list[Path]:
        """What of the state dir is in its work dir."""
        return [self.shared_runs, self.staging_cache, self.input_store.path, self.references,
                self.access]


def recorded_work(state_dir: Path) -> Path | None:
    """The work dir a state dir records; None when it records none (it is its own)."""
    record = StateDir(Path(state_dir)).work_record
    try:
        named = json.loads(record.read_text())["work_dir"]
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LayoutError(f"{record} cannot be read as the record of a work dir: {err}") \
            from None
    if not isinstance(named, str) or not named.startswith("/"):
        raise LayoutError(f"{record} names no absolute work dir: {named!r}")
    return Path(named)


def open_state(state_dir: Path, work_dir: Path | None = None, record: bool = False) -> StateDir:
    """The state dir with its work dir, checked: the one it records, which `work_dir` (when
    given) must be and which must name it back (else its file system is not mounted, or it
    serves another state dir); or, when none is recorded, `work_dir` chosen: apart from the
    state dir, empty, for a state dir that holds no run folder or kept file yet. A chosen work
    dir is recorded in both folders when `record` (the commands that make jobs); otherwise it
    is refused. LayoutError says why."""
    state = StateDir(Path(state_dir))
    here = Path(os.path.realpath(state.path))
    recorded = recorded_work(state.path)
    if recorded is not None:
        if work_dir is not None and Path(os.path.realpath(work_dir)) != recorded:
            raise LayoutError(
                f"the state dir {state.path} works in {recorded} ({state.work_record}); a "
                "work dir cannot change, its jobs' files are there: leave --work-dir out, or "
                "use a new state dir")
        if not (recorded / OWNER_RECORD).exists():
            raise LayoutError(f"{recorded / OWNER_RECORD} is missing: is the file system of "
                              f"the work dir {recorded} mounted?")
        _owned(recorded, here)
        return state
    work = Path(os.path.realpath(work_dir)) if work_dir is not None else here
    if work == here:
        return state  # the default: everything in the state dir
    apart = ("keep them apart: the state dir on the service host's local disk, the work dir "
             "on the shared file system the cluster's nodes see")
    if here.is_relative_to(work):
        raise LayoutError(f"the state dir {here} lies in the work dir {work}; {apart}")
    if work.is_relative_to(here):
        raise LayoutError(f"the work dir {work} lies in the state dir {here}; {apart}")
    held = [str(part) for part in state.shared_parts if _listed(part)]  # in the state dir
    if held:
        raise LayoutError(
            f"the state dir {state.path} already keeps {', '.join(held)}, which a work dir "
            "would leave behind: a work dir is chosen for a new state dir (use a new "
            "--state-dir, or leave --work-dir out)")
    if not record:
        raise LayoutError(f"the state dir {state.path} records no work dir; `serve` or `run` "
                          "with --work-dir records one")
    state.path.mkdir(parents=True, exist_ok=True)
    with open(state.service_lock, "a+") as lock:  # no service runs on it meanwhile
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LayoutError(f"a cnvkit-nf serve uses the state dir {state.path} without a "
                              "work dir; stop it to choose one") from None
        _claim(work, here)
        _write(state.work_record, {"work_dir": str(work)})
    return StateDir(state.path)


def _owner(here: Path) -> dict:
    """A work dir's owner record for the state dir `here` of this host."""
    return {"state_dir": str(here), "host": socket.gethostname()}


def _owned(work: Path, here: Path) -> None:
    """Refuse a work dir whose owner record names another state dir, or another host."""
    mine = _owner(here)
    try:
        owner = json.loads((work / OWNER_RECORD).read_text())
    except (OSError, ValueError) as err:
        raise LayoutError(f"{work / OWNER_RECORD} cannot be read: {err}") from None
    if owner != mine:
        raise LayoutError(
            f"the work dir {work} serves the state dir {owner.get('state_dir')} of host "
            f"{owner.get('host')} ({work / OWNER_RECORD}), not {here} of {mine['host']}: a "
            "work dir serves one state dir, whose local locks guard what is in it")


def _claim(work: Path, here: Path) -> None:
    """Make `work` the work dir of the state dir `here`: its owner record, created in an
    empty folder (or found, when an earlier recording was interrupted)."""
    work.mkdir(parents=True, exist_ok=True)
    found = _listed(work)
    if found and work / OWNER_RECORD not in found:
        raise LayoutError(f"the work dir {work} is not empty and serves no state dir: choose "
                          "a new or empty folder")
    try:
        fd = os.open(work / OWNER_RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # claimed before, or by another process meanwhile
        _owned(work, here)
        return
    with os.fdopen(fd, "w") as handle:
        json.dump(_owner(here), handle)
        handle.flush()
        os.fsync(handle.fileno())


def file_system(path: Path, mountinfo: str | None = None) -> str:
    """The type of the file system `path` is (or would be made) on, by the deepest mount point
    above it in /proc/self/mountinfo (or `mountinfo`); "" when none is known."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return ""
    real, found = Path(os.path.realpath(path)), (-1, "")
    for line in mountinfo.splitlines():
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not after:
            continue
        point = Path(parts[4].replace("\\040", " ").replace("\\011", "\t"))
        if real.is_relative_to(point) and len(point.parts) >= found[0]:
            found = (len(point.parts), after.split()[0])
    return found[1]


def _write(path: Path, value: dict) -> None:
    """Write a small JSON file whole (renamed into place)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    with open(partial, "w") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _listed(folder: Path) -> list[Path]:
    """What a folder holds; nothing when it is missing."""
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
