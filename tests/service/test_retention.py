"""Retention: old job records, run folders and staged inputs are cleaned by a policy (age, disk
use), by `cnvkit-nf clean` or on the service's schedule; nothing an active job needs goes."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from cnvkit_nf.service import retention
from cnvkit_nf.service.config import ConfigError, load
from cnvkit_nf.service.retention import DISCARDED, Policy, clean
from cnvkit_nf.state import jobs, locks
from cnvkit_nf.state.jobs import (
    CANCELING,
    CANCELLED,
    FAILED,
    FINISHED,
    LAUNCHING,
    RUNNING,
    Failure,
    IllegalTransition,
    JobStore,
)
from scaffold.local_service import LocalService

LAUNCHER = Path(__file__).resolve().parents[2] / "bin" / "cnvkit-nf"
DAY = 86400
MB = 1 << 20


@pytest.fixture
def state(tmp_path) -> tuple[Path, JobStore]:
    folder = tmp_path / "state"
    return folder, JobStore(folder / "jobs.sqlite")


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _job(state_dir: Path, store: JobStore, status: str, days_ago: float = 0,
         size: int = MB, monkeypatch=None) -> str:
    """A job brought to `status` by the store's transitions `days_ago` days ago, with a run
    folder of `size` bytes (work/ and Nextflow's session history)."""
    stamp = int((time.time() - days_ago * DAY) * 1000)
    monkeypatch.setattr(jobs, "now_ms", lambda: stamp)
    job = store.create({"output_dir": f"/out/{uuid.uuid4()}"}, runs_in=state_dir / "runs",
                       runner="service")
    folder = Path(job.run_dir)
    _write(folder / "work" / "ab" / "cdef" / "out.cnr", size)
    _write(folder / ".nextflow" / "history", 10)
    if status != LAUNCHING:
        store.start(job.instance_id, pid=1, attempts=1)
    {FINISHED: lambda i: store.finish(i),
     FAILED: lambda i: store.fail(i, "task failed", Failure.WORKFLOW),
     CANCELLED: lambda i: store.cancelled(i), CANCELING: lambda i: store.request_cancel(i),
     }.get(status, lambda i: None)(job.instance_id)
    monkeypatch.undo()
    assert store.get(job.instance_id).status == status
    return job.instance_id


def _cached(state_dir: Path, name: str, days_ago: float, size: int = MB) -> Path:
    """An object-storage input in the download cache, last used `days_ago` days ago."""
    folder = state_dir / "cache" / name
    _write(folder / f"{name}.bam", size)
    _used(folder, days_ago)
    return folder


def _entry(state_dir: Path, name: str, days_ago: float, size: int = MB,
           linked_to: Path | None = None) -> Path:
    """An input-store entry whose object is a copy of `size` bytes, or a hard link to a
    project's file."""
    objects = state_dir / "inputs" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    target = objects / f"copy-{name}"
    if linked_to is not None:
        target = objects / f"link-{name}"
        os.link(linked_to, target)
    else:
        _write(target, size)
    entry = state_dir / "inputs" / "entries" / name
    entry.mkdir(parents=True)
    (entry / "x.bam").symlink_to(Path("..", "..", "objects", target.name))
    _used(entry, days_ago)
    return entry


def _used(path: Path, days_ago: float) -> None:
    stamp = time.time() - days_ago * DAY
    os.utime(path, (stamp, stamp))


def _uses(state_dir: Path, instance_id: str, *, params: list[Path] = (),
          links: list[Path] = ()) -> None:
    """An active job's run: params.json naming `params`, its inputs/ linking to `links`."""
    run = state_dir / "runs" / instance_id
    (run / "params.json").write_text(json.dumps({"tumor": [str(p) for p in params]}))
    for target in links:
        (run / "inputs" / "tumor").mkdir(parents=True, exist_ok=True)
        (run / "inputs" / "tumor" / target.name).symlink_to(target)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_age_forgets_old_final_jobs_and_keeps_recent_and_active_ones(state, monkeypatch):
    state_dir, store = state
    old = {s: _job(state_dir, store, s, 40, monkeypatch=monkeypatch)
           for s in (FINISHED, FAILED, CANCELLED)}
    recent = _job(state_dir, store, FAILED, 1, monkeypatch=monkeypatch)
    active = {s: _job(state_dir, store, s, 40, monkeypatch=monkeypatch)
              for s in (LAUNCHING, RUNNING, CANCELING)}

    report = clean(state_dir, store, Policy(max_age=30 * DAY))

    assert sorted(report.forgotten) == sorted(old.values())
    for instance_id in old.values():
        assert store.get(instance_id) is None
        assert not (state_dir / "runs" / instance_id).exists()
        with pytest.raises(IllegalTransition, match="not recorded"):
            store.retry(instance_id)
    assert not [name for name in os.listdir(state_dir / "runs") if name.startswith(".")]
    for instance_id in active.values():
        assert (state_dir / "runs" / instance_id / "work").is_dir()
    kept = {item.path: item.why for item in report.kept}
    assert kept[f"runs/{active[RUNNING]}"] == "job is RUNNING"
    # the failed job within the age keeps its run folder (session history and work/), and can
    # still be retried, its finished tasks reused
    assert (state_dir / "runs" / recent / ".nextflow" / "history").is_file()
    assert store.get(recent).message == "task failed"
    assert store.retry(recent).status == LAUNCHING


def test_disk_removes_unused_staged_inputs_first_then_the_oldest_run_folders(state,
                                                                             monkeypatch):
    state_dir, store = state
    oldest = _job(state_dir, store, FAILED, 3, monkeypatch=monkeypatch)
    older = _job(state_dir, store, FINISHED, 2, monkeypatch=monkeypatch)
    newest = _job(state_dir, store, CANCELLED, 1, monkeypatch=monkeypatch)
    running = _job(state_dir, store, RUNNING, 5, monkeypatch=monkeypatch)
    unused_cache = _cached(state_dir, "c-unused", 9)
    used_cache = _cached(state_dir, "c-used", 20)
    unused_entry = _entry(state_dir, "e-unused", 8)
    used_entry = _entry(state_dir, "e-used", 20)
    _uses(state_dir, running, params=[used_entry / "x.bam"],
          links=[used_cache / "c-used.bam"])
    # 4 run folders, 2 cache folders, 2 entries: 8 MB and some directories; room for 4.5 MB

    report = clean(state_dir, store, Policy(max_disk=4 * MB + MB // 2))

    assert [item.path for item in report.removed] == [
        "cache/c-unused", "inputs/entries/e-unused", f"runs/{oldest}", f"runs/{older}"]
    assert report.removed[1].bytes >= MB  # the entry with the object only it links to
    assert not (state_dir / "inputs" / "objects" / "copy-e-unused").exists()
    assert not unused_cache.exists() and not unused_entry.exists()
    assert used_cache.is_dir() and used_entry.is_dir()
    assert (state_dir / "inputs" / "objects" / "copy-e-used").is_file()
    for instance_id in (newest, running):
        assert (state_dir / "runs" / instance_id / "work").is_dir()
    assert 3 * MB < report.disk <= 4 * MB + MB // 2 and report.over == 0
    # the discarded jobs keep their records, which say so; a retry runs afresh
    for instance_id, status in ((oldest, FAILED), (older, FINISHED)):
        job = store.get(instance_id)
        assert job.status == status and job.warnings == [DISCARDED]
        assert not (state_dir / "runs" / instance_id).exists()
    assert store.get(oldest).message == "task failed"  # the reason it failed stays
    assert store.retry(older).status == LAUNCHING
    kept = {item.path: item.why for item in report.kept}
    assert kept["cache/c-used"] == kept["inputs/entries/e-used"] == f"used by active job {running}"


def test_what_active_jobs_use_stays_even_over_the_bound(state, monkeypatch):
    state_dir, store = state
    running = _job(state_dir, store, RUNNING, monkeypatch=monkeypatch)
    staging = _job(state_dir, store, LAUNCHING, monkeypatch=monkeypatch)
    ended = _job(state_dir, store, FINISHED, monkeypatch=monkeypatch)
    used = _cached(state_dir, "c-used", 30)
    _uses(state_dir, running, links=[used / "c-used.bam"])

    report = clean(state_dir, store, Policy(max_disk=0))

    assert [item.path for item in report.removed] == [f"runs/{ended}"]
    assert used.is_dir()
    assert {item.path for item in report.kept} == {
        "cache/c-used", f"runs/{running}", f"runs/{staging}"}
    assert report.over == report.disk > 3 * MB
    assert "over: see what was kept" in report.summary()


def test_staged_inputs_unused_longer_than_the_age_go_unless_an_active_job_names_them(
        state, monkeypatch, tmp_path):
    state_dir, store = state
    running = _job(state_dir, store, RUNNING, monkeypatch=monkeypatch)
    named = _entry(state_dir, "e-named", 40)
    stale = _entry(state_dir, "e-stale", 40)
    fresh = _entry(state_dir, "e-fresh", 1)
    project_file = _write(tmp_path / "project" / "S1.bam", MB)
    linked = _entry(state_dir, "e-linked", 40, linked_to=project_file)
    ctime = project_file.stat().st_ctime_ns
    _uses(state_dir, running, params=[named / "x.bam"])

    report = clean(state_dir, store, Policy(max_age=30 * DAY))

    removed = {item.path: item for item in report.removed}
    assert set(removed) == {"inputs/entries/e-stale", "inputs/entries/e-linked"}
    assert "unused since" in removed["inputs/entries/e-stale"].why
    assert named.is_dir() and fresh.is_dir() and not stale.exists() and not linked.exists()
    assert not (state_dir / "inputs" / "objects" / "copy-e-stale").exists()
    # a hard link to a project's file takes no room: counted as nothing, and kept (unlinking
    # it would change the file's ctime, so the input's identity, and Nextflow's task cache)
    assert removed["inputs/entries/e-linked"].bytes < MB
    assert (state_dir / "inputs" / "objects" / "link-e-linked").is_file()
    assert project_file.stat().st_ctime_ns == ctime


def test_leftovers_and_run_folders_without_a_record_are_removed(state, monkeypatch):
    state_dir, store = state
    kept_job = _job(state_dir, store, FINISHED, monkeypatch=monkeypatch)
    orphan = _write(state_dir / "runs" / str(uuid.uuid4()) / "nextflow.out", 10).parent
    _used(orphan, 2 / 24)
    young_orphan = _write(state_dir / "runs" / str(uuid.uuid4()) / "nextflow.out", 10).parent
    trash = _write(state_dir / "runs" / ".removing-x-1234" / "work" / "f", 10).parent.parent
    cached = _cached(state_dir, "c", 0)
    partial = _write(cached / ".c.bam.123.part", 100)
    building = (state_dir / "inputs" / "entries" / ".building-1")
    building.mkdir(parents=True)
    stray = _write(state_dir / "inputs" / "objects" / "copy-nobody", 100)

    report = clean(state_dir, store, Policy(max_age=30 * DAY))

    assert not orphan.exists() and not trash.exists() and not partial.exists()
    assert not building.exists() and not stray.exists()
    assert young_orphan.is_dir() and (cached / "c.bam").is_file()
    assert (state_dir / "runs" / kept_job).is_dir()
    assert {item.path for item in report.removed} == {
        str(p.relative_to(state_dir)) for p in (orphan, trash, partial, building, stray)}
    assert report.forgotten == []


def test_a_dry_run_removes_nothing_and_reports_the_same_plan(state, monkeypatch):
    state_dir, store = state
    for days, status in ((40, FINISHED), (3, FAILED), (2, FINISHED), (1, CANCELLED),
                         (40, RUNNING)):
        _job(state_dir, store, status, days, monkeypatch=monkeypatch)
    _cached(state_dir, "c-old", 35)
    _cached(state_dir, "c-new", 1)
    _entry(state_dir, "e-new", 2)
    before, records = _tree(state_dir), [(j.instance_id, j.message) for j in store.every()]
    policy = Policy(max_age=30 * DAY, max_disk=3 * MB)

    dry = clean(state_dir, store, policy, dry_run=True)

    assert _tree(state_dir) - {"clean.lock", "retention.lock"} == before
    assert [(j.instance_id, j.message) for j in store.every()] == records
    assert dry.removed and dry.forgotten and "would remove" in dry.summary()
    done = clean(state_dir, store, policy)
    assert [(i.path, i.why) for i in dry.removed] == [(i.path, i.why) for i in done.removed]
    assert dry.forgotten == done.forgotten and dry.disk == done.disk
    assert _tree(state_dir) != before


def test_the_sweep_of_staged_inputs_waits_for_jobs_staging(state, monkeypatch):
    state_dir, store = state
    entered, released = threading.Event(), []

    def stage() -> None:
        with locks.staging(state_dir):
            entered.set()
            time.sleep(0.5)
            released.append(time.monotonic())

    stale = _cached(state_dir, "c-stale", 40)
    holder = threading.Thread(target=stage)
    holder.start()
    entered.wait(5)
    skipped = clean(state_dir, store, Policy(max_age=30 * DAY), lock_wait=0.1)
    assert stale.is_dir() and not released
    assert "jobs were staging" in skipped.kept[-1].why
    report = clean(state_dir, store, Policy(max_age=30 * DAY), lock_wait=5)
    finished = time.monotonic()
    holder.join()
    assert released and finished >= released[0]
    assert [item.path for item in report.removed] == ["cache/c-stale"] and not stale.exists()


def test_forget_and_discard_act_only_on_ended_jobs_and_with_their_folder(state, monkeypatch):
    state_dir, store = state
    running = _job(state_dir, store, RUNNING, 40, monkeypatch=monkeypatch)
    ended = _job(state_dir, store, FAILED, 40, monkeypatch=monkeypatch)
    called = []
    assert not store.forget(running, jobs.now_ms(), lambda: called.append(1))
    assert not store.discard_run(running, "gone", lambda: called.append(1))
    assert not store.forget(ended, jobs.now_ms() - 50 * DAY * 1000, lambda: called.append(1))
    assert called == []

    def fails() -> None:
        raise OSError("busy")

    with pytest.raises(OSError):
        store.forget(ended, jobs.now_ms(), fails)
    with pytest.raises(OSError):
        store.discard_run(ended, "gone", fails)
    assert store.get(ended).warnings == []  # both rolled back
    assert store.discard_run(ended, "gone", lambda: None)
    assert (store.get(ended).message, store.get(ended).warnings) == ("task failed", ["gone"])
    assert store.forget(ended, jobs.now_ms()) and store.get(ended) is None


def test_a_retry_waits_for_the_forget_under_way_then_finds_no_job(state, monkeypatch):
    state_dir, store = state
    ended = _job(state_dir, store, FAILED, 40, monkeypatch=monkeypatch)
    inside, go_on, outcome = threading.Event(), threading.Event(), []

    def folder_away() -> None:  # the forget's transaction is open meanwhile
        inside.set()
        go_on.wait(5)

    forgetting = threading.Thread(target=store.forget, args=(ended, jobs.now_ms(), folder_away))
    forgetting.start()
    inside.wait(5)

    def retry() -> None:
        try:
            store.retry(ended)
        except IllegalTransition as err:
            outcome.append(str(err))

    retrying = threading.Thread(target=retry)
    retrying.start()
    time.sleep(0.3)
    assert retrying.is_alive() and not outcome  # waits for the forget's write transaction
    go_on.set()
    forgetting.join(5)
    retrying.join(5)
    assert outcome == [f"cannot retry job {ended}: it is not recorded"]


def test_the_service_schedule_cleans_at_once_and_then_every_turn(state, monkeypatch):
    state_dir, store = state
    old = _job(state_dir, store, FINISHED, 40, monkeypatch=monkeypatch)
    lines, stop = [], threading.Event()
    schedule = retention.Schedule(Policy(max_age=30 * DAY), every=0.05)
    thread = retention.schedule(state_dir, store, schedule, lines.append, stop)
    deadline = time.monotonic() + 5
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and thread.daemon
    assert lines[0].startswith("retention: removed 1 item(s)")
    assert "1 job record(s) forgotten" in lines[0] and store.get(old) is None
    assert lines[1].startswith("retention: removed 0 item(s)")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CNVKIT_NF_SERVICE_CONFIG"}
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_the_clean_command(state, monkeypatch, tmp_path):
    state_dir, store = state
    old = _job(state_dir, store, FINISHED, 40, monkeypatch=monkeypatch)
    recent = _job(state_dir, store, FAILED, 1, monkeypatch=monkeypatch)

    refused = _cli("--state-dir", str(state_dir), "clean")
    assert refused.returncode == 2 and "removes nothing by default" in refused.stderr
    bad = _cli("--state-dir", str(state_dir), "clean", "--max-age", "3x")
    assert bad.returncode == 2 and "not a duration" in bad.stderr

    dry = _cli("--state-dir", str(state_dir), "clean", "--max-age", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove runs/{old}" in dry.stdout and store.get(old) is not None

    config = tmp_path / "service.json"
    config.write_text(json.dumps({"retention": {"max_age": "30d"}}))
    done = _cli("--state-dir", str(state_dir), "clean", "--service-config", str(config),
                "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["forgotten"] == [old] and report["removed"][0]["path"] == f"runs/{old}"
    assert store.get(old) is None and store.get(recent) is not None


@pytest.mark.parametrize(("setting", "expected"), [
    ({"max_age": "30d", "max_disk": "200G", "every": "1h"},
     retention.Schedule(Policy(30 * DAY, 200 << 30), 3600)),
    ({"max_disk": "1.5T"}, retention.Schedule(Policy(None, int(1.5 * (1 << 40))), 3600)),
    ({"max_age": "90m", "every": "10m"}, retention.Schedule(Policy(5400, None), 600)),
])
def test_the_service_config_reads_a_retention_policy(tmp_path, setting, expected):
    path = tmp_path / "service.json"
    path.write_text(json.dumps({"retention": setting}))
    assert load(path).retention == expected


@pytest.mark.parametrize(("setting", "complaint"), [
    ({}, "max_age .* or both"),
    ({"every": "1h"}, "max_age .* or both"),
    ({"max_age": "30d", "keep": "all"}, "is not an object"),
    ({"max_age": "3x"}, r"retention.max_age: '3x' is not a duration"),
    ({"max_age": 30}, r"retention.max_age: 30 is not a duration"),
    ({"max_disk": "lots"}, r"retention.max_disk: 'lots' is not a size"),
    ({"max_disk": "1G", "every": "0m"}, "retention.every: must be more than 0"),
    ("30d", "is not an object"),
])
def test_the_service_config_names_a_bad_retention_policy(tmp_path, setting, complaint):
    path = tmp_path / "service.json"
    path.write_text(json.dumps({"retention": setting}))
    with pytest.raises(ConfigError, match=complaint):
        load(path)
    assert load(None).retention is None


def test_the_service_cleans_on_its_schedule(state, monkeypatch, tmp_path):
    state_dir, store = state
    old = _job(state_dir, store, FINISHED, 40, monkeypatch=monkeypatch)
    recent = _job(state_dir, store, FINISHED, 1, monkeypatch=monkeypatch)
    config = tmp_path / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": "alice-token-0123456789", "owner": "alice", "projects": ["a"]}],
        "retention": {"max_age": "30d", "every": "1h"}}))
    service = LocalService(state_dir, config).start()
    log = service.log
    try:
        deadline = time.monotonic() + 30
        while "retention:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert service.stop() == 0
    assert "retention: removed 1 item(s)" in log.read_text()
    assert store.get(old) is None and store.get(recent) is not None
