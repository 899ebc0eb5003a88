"""A state dir with a work dir apart (`layout.open_state`): the job records and every lock stay
in the state dir, what cluster nodes see goes into the work dir; the choice is recorded once,
checked at each use, and refused where it could not work."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import pytest

from cnvkit_nf.reference.access import AccessCache
from cnvkit_nf.reference.cache import FILES, ReferenceCache
from cnvkit_nf.service.retention import Policy, clean
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.state.layout import (
    NETWORK_FILE_SYSTEMS,
    LayoutError,
    RunFolder,
    StateDir,
    file_system,
    open_state,
)

DAY = 86400


@pytest.fixture
def apart(tmp_path) -> tuple[Path, Path]:
    """A state dir and a work dir, two folders side by side."""
    return tmp_path / "local" / "state", tmp_path / "shared" / "work"


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def test_without_a_work_dir_everything_stays_in_the_state_dir(tmp_path):
    state = open_state(tmp_path / "state")
    assert state.work == state.path == tmp_path / "state"
    assert not state.path.exists()  # nothing recorded, nothing made
    run = state.run("job-1")
    assert run.shared == run.path == state.runs / "job-1"
    assert run.results.path == run.path / "results" and run.work == run.path / "work"
    for part in (state.staging_cache, state.input_store.path, state.references, state.access,
                 state.shared_runs):
        assert part.parent == state.path
    assert RunFolder(tmp_path / "anywhere").shared == tmp_path / "anywhere"
    # --work-dir naming the state dir itself is the default, said aloud: nothing recorded
    assert open_state(state.path, state.path, record=True).work == state.path
    assert not state.work_record.exists()


def test_a_work_dir_is_recorded_once_and_every_later_use_finds_it(apart):
    state_dir, work_dir = apart
    state = open_state(state_dir, work_dir, record=True)
    work = Path(os.path.realpath(work_dir))
    assert json.loads((state_dir / "work-dir.json").read_text()) == {"work_dir": str(work)}
    assert json.loads((work / "state-dir.json").read_text()) == {
        "state_dir": os.path.realpath(state_dir), "host": socket.gethostname()}
    for later in (StateDir(state_dir), open_state(state_dir), open_state(state_dir, work_dir)):
        assert later.work == work
    # local: the records, the locks, what Nextflow's head keeps of a run
    run = state.run("job-1")
    for path in (state.jobs_db, state.service_lock, state.retention_lock, state.clean_lock,
                 state.entry_locks("references"), run.path, run.params, run.nextflow_log,
                 run.exit_file, run.pid_file, run.history):
        assert _inside(path, state_dir) and not _inside(path, work_dir), path
    # shared: what the cluster's nodes read and write
    assert run.shared == work / "runs" / "job-1" == RunFolder(str(run.path)).shared
    for path in (run.work, run.results.path, run.inputs, state.staging_cache,
                 state.input_store.path, state.references, state.access):
        assert _inside(path, work_dir) and not _inside(path, state_dir), path
    with pytest.raises(LayoutError, match="a work dir cannot change"):
        open_state(state_dir, work_dir.parent / "elsewhere")


def _claimed_by_another(state_dir: Path, work_dir: Path) -> None:
    open_state(state_dir.parent / "other-state", work_dir, record=True)


def _unmounted(state_dir: Path, work_dir: Path) -> None:
    open_state(state_dir, work_dir, record=True)
    (work_dir / "state-dir.json").unlink()  # as an empty mount point shows it


def _kept_already(state_dir: Path, work_dir: Path) -> None:
    (state_dir / "runs" / "job-0").mkdir(parents=True)


def _not_empty(state_dir: Path, work_dir: Path) -> None:
    (work_dir / "runs").mkdir(parents=True)


@pytest.mark.parametrize("arrange, state_dir, work_dir, complaint", [
    (None, "s", "s/shared", "the work dir .* lies in the state dir"),
    (None, "w/state", "w", "the state dir .* lies in the work dir"),
    (_claimed_by_another, "s", "w", "serves the state dir .*other-state"),
    (_unmounted, "s", "w", "state-dir.json is missing: is the file system .* mounted"),
    (_kept_already, "s", "w", "already keeps .*runs.* a work dir is chosen for a new state"),
    (_not_empty, "s", "w", "is not empty and serves no state dir"),
])
def test_a_work_dir_that_could_not_work_is_refused(tmp_path, arrange, state_dir, work_dir,
                                                   complaint):
    state_dir, work_dir = tmp_path / state_dir, tmp_path / work_dir
    if arrange:
        arrange(state_dir, work_dir)
    with pytest.raises(LayoutError, match=complaint):
        open_state(state_dir, work_dir, record=True)
        open_state(state_dir)  # the unmounted work dir: refused at each later use


def test_a_work_dir_is_recorded_only_by_commands_that_make_jobs_and_no_service_runs(apart):
    state_dir, work_dir = apart
    with pytest.raises(LayoutError, match="records no work dir"):
        open_state(state_dir, work_dir)  # e.g. `cache list --work-dir`
    state_dir.mkdir(parents=True)
    with open(StateDir(state_dir).service_lock, "w") as serving:
        fcntl.flock(serving, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LayoutError, match="a cnvkit-nf serve uses the state dir"):
            open_state(state_dir, work_dir, record=True)
    assert not StateDir(state_dir).work_record.exists() and not work_dir.exists()


def _built(folder: Path) -> Path:
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{name}\n" if name != "reference.json" else "{}")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_kept_entries_are_in_the_work_dir_and_their_locks_in_the_state_dir(apart):
    state_dir, work_dir = apart
    state = open_state(state_dir, work_dir, record=True)
    cache, regions = ReferenceCache.of(state), AccessCache.of(state)
    building = cache.acquire("lab-a", "k1")
    assert building.entry is None
    cache.keep("lab-a", "k1", _built(work_dir.parent / "results"))
    building.release()
    using = cache.acquire("lab-a", "k1")
    assert using.entry is not None and _inside(using.entry.reference, work_dir)
    assert regions.acquire("lab-a", "a1", wait=False).held
    locks = _files(state_dir / "locks")
    assert sorted(Path(name).name for name in locks) == ["a1.lock", "k1.lock"]
    assert {Path(name).parts[0] for name in locks} == {"references", "access"}
    assert not [name for name in _files(work_dir) if name.endswith(".lock")]
    # a prune (`cache prune`) waits on the same local locks: the entry in use stays
    assert cache.prune(0) == [] and cache.entries("lab-a")
    using.release()
    assert [entry.key for entry in cache.prune(0)] == ["k1"]


def test_retention_cleans_both_parts_of_a_run_folder_and_the_staged_inputs(apart):
    state_dir, work_dir = apart
    state = open_state(state_dir, work_dir, record=True)
    store = JobStore(state.jobs_db)
    job = store.create({"output_dir": "/out/a"}, runs_in=state.runs, runner="service")
    store.start(job.instance_id, pid=1, attempts=1)
    store.finish(job.instance_id)
    run = RunFolder(job.run_dir)
    (run.path / ".nextflow").mkdir(parents=True)
    (run.path / ".nextflow" / "history").write_text("a session\n")
    (run.work / "ab").mkdir(parents=True)
    (run.work / "ab" / "task.out").write_bytes(b"x" * 4096)
    orphan = state.shared_runs / "no-record"
    orphan.mkdir(parents=True)
    old = time.time() - 2 * DAY
    os.utime(orphan, (old, old))
    staged = state.staging_cache / "object-1"
    staged.mkdir(parents=True)
    (staged / "x.bam").write_bytes(b"y" * 4096)
    os.utime(staged, (old, old))
    report = clean(state_dir, store, Policy(max_age=DAY), now=time.time() + 2 * DAY)
    assert report.forgotten == [job.instance_id]
    removed = {item.path for item in report.removed}
    assert removed == {f"runs/{job.instance_id}", os.path.realpath(orphan),
                       os.path.realpath(staged)}
    assert not run.path.exists() and not run.shared.exists() and not orphan.exists()
    assert not staged.exists() and store.get(job.instance_id) is None


MOUNTS = """\
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 27 0:50 / /shared rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 40 8:17 / /shared/scratch\\040space rw,relatime - xfs /dev/sdb1 rw
42 27 0:51 / /lustre rw - lustre 10.0.0.1@tcp:/fs rw
"""


@pytest.mark.parametrize("path, kind", [
    ("/var/lib/cnvkit", "ext4"), ("/shared/cnvkit/state", "nfs4"), ("/shared", "nfs4"),
    ("/shared/scratch space/state", "xfs"), ("/shared/scratch", "nfs4"),
    ("/lustre/new/folder", "lustre"),
])
def test_the_file_system_of_a_path_is_its_deepest_mount(path, kind):
    assert file_system(Path(path), MOUNTS) == kind
    assert (kind in NETWORK_FILE_SYSTEMS) == (kind in ("nfs4", "lustre"))


def test_the_file_system_of_this_machines_paths_is_known(tmp_path):
    assert file_system(tmp_path) != ""
    assert file_system(Path("/proc/self")) == "proc"
