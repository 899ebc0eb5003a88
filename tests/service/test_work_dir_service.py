"""An operator's layout on one machine, two folders apart: the state dir (`--state-dir`, the
service host's local disk: job records, locks, Nextflow's head files) and the work dir
(`--work-dir`, the shared file system: the runs' work and results, staged inputs, kept
references). Real `cnvkit-nf serve --stub` and `cnvkit-nf run --stub`; both trees are walked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage import manifest
from scaffold.local_service import ROOT, LocalService
from tests.conftest import launch, seed_request
from tests.service.test_service import ALICE, job, submit, wait_for

pytestmark = pytest.mark.e2e

REUSED = "reference reused"
# Nextflow's head keeps these in a run folder (its launch directory); nothing else is local
HEAD_FILES = {"params.json", "nextflow.out", "nextflow.exitcode", "nextflow.pid", ".nextflow",
              ".nextflow.log", *(f".nextflow.log.{n}" for n in range(1, 10))}
STATE_FILES = {"jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm", "work-dir.json",
               "service.lock", "retention.lock", "clean.lock", "locks", "runs"}
WORK_FILES = {"state-dir.json", "runs", "cache", "inputs", "references", "access"}


@pytest.fixture(scope="module")
def site(tmp_path_factory, cohort, nextflow_bin) -> dict:
    """The cohort in a read-only data root, a writable one for results, the service config;
    state dirs go under local/, work dirs under shared/."""
    base = tmp_path_factory.mktemp("layout_site")
    data = base / "data"
    shutil.copytree(cohort.ref.parent, data)
    (base / "out" / "lab-a").mkdir(parents=True)
    config = base / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]}],
        "data_roots": [str(data), {"path": str(base / "out" / "{project}"), "writable": True}],
    }))
    return {"base": base, "data": data, "config": config, "cohort": cohort}


def request_for(site: dict, name: str) -> dict:
    request = seed_request(site["cohort"], site["base"] / "out" / "lab-a" / name)
    return json.loads(json.dumps(request).replace(str(site["cohort"].ref.parent),
                                                  str(site["data"])))


def folders(site: dict, name: str) -> tuple[Path, Path]:
    return site["base"] / "local" / name, site["base"] / "shared" / name


def serve(site: dict, name: str, *args: str) -> LocalService:
    """`cnvkit-nf --state-dir local/NAME serve --stub ARGS` with --work-dir shared/NAME given
    (in the environment, CNVKIT_NF_WORK_DIR) at its first start only: it is recorded then."""
    state, work = folders(site, name)
    first = not state.exists()
    state.mkdir(parents=True, exist_ok=True)
    return LocalService(state, site["config"], "--stub", *args,
                        env={"CNVKIT_NF_WORK_DIR": str(work)} if first else None).start()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), *args], capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items()
                                          if k != "CNVKIT_NF_WORK_DIR"})


def tree(folder: Path) -> list[Path]:
    """Every file and folder under `folder`, relative to it (no link followed)."""
    return sorted(Path(top, name).relative_to(folder) for top, dirs, files in os.walk(folder)
                  for name in dirs + files)


def only_local_things_in(state: Path) -> None:
    """The state dir holds the job records, the locks, the records of the layout and the
    head's part of each run folder: no result, task, input or kept reference."""
    assert {path.parts[0] for path in tree(state)} <= STATE_FILES, tree(state)
    for run in (state / "runs").iterdir():
        assert {path.name for path in run.iterdir()} <= HEAD_FILES, run
    assert all(path.suffix == ".lock" for path in tree(state / "locks")
               if (state / "locks" / path).is_file())
    assert not [path for path in tree(state) if path.suffix in (".bam", ".cnn", ".cnr", ".bed")]


def no_database_or_lock_in(work: Path) -> None:
    """Nothing in the work dir needs a lock that a network file system may not honour."""
    names = [path.name for path in tree(work)]
    assert {path.parts[0] for path in tree(work)} <= WORK_FILES, tree(work)
    assert not [name for name in names if ".sqlite" in name or name.endswith((".lock", "-wal",
                                                                              "-shm"))
                or name in ("LOCK", ".nextflow", "history")], names


def test_jobs_keep_records_and_locks_local_and_the_rest_in_the_work_dir(site):
    state, work = folders(site, "apart")
    service = serve(site, "apart")
    try:
        first = submit(service, request_for(site, "first"))
        built = wait_for(service, first, {"FINISHED", "FAILED"})
        second = submit(service, request_for(site, "second"))
        reused = wait_for(service, second, {"FINISHED", "FAILED"})
    finally:
        assert service.stop() == 0
    assert built["status"] == "FINISHED", built["message"]
    assert reused["status"] == "FINISHED" and reused["warnings"][0].startswith(REUSED), reused
    for finished in (built, reused):
        assert manifest.verify(Path(finished["output_dir"])) == []
    assert json.loads((state / "work-dir.json").read_text()) == {
        "work_dir": os.path.realpath(work)}
    only_local_things_in(state)
    no_database_or_lock_in(work)
    # each run's head files are local, its results and inputs in the work dir; the run's
    # Nextflow work went once its results were published
    for instance_id in (first, second):
        assert (state / "runs" / instance_id / ".nextflow" / "history").is_file()
        assert {p.name for p in (work / "runs" / instance_id).iterdir()} == {"results"}
        params = json.loads((state / "runs" / instance_id / "params.json").read_text())
        named = [params[key] for key in ("ref", "bed", "output_dir")]
        assert all(Path(path).is_relative_to(os.path.realpath(work)) for path in named), named
    kept = json.loads(cli("--state-dir", str(state), "cache", "list", "--json").stdout)
    assert kept["count"] == 1 and Path(kept["references"][0]["reference"]).is_relative_to(
        os.path.realpath(work))
    assert (work / "access").is_dir() and (work / "inputs" / "entries").is_dir()

    wrong = cli("--state-dir", str(state), "--work-dir", str(work.parent / "w2"), "cache",
                "list")
    assert wrong.returncode == 1 and "a work dir cannot change" in wrong.stderr

    dry = cli("--state-dir", str(state), "clean", "--max-disk", "0", "--dry-run", "--json")
    planned = {item["path"] for item in json.loads(dry.stdout)["removed"]}
    entries = {str(path) for path in (Path(os.path.realpath(work)) / "inputs" / "entries")
               .iterdir()}
    assert entries and entries <= planned, planned
    assert {f"runs/{first}", f"runs/{second}"} <= planned
    done = cli("--state-dir", str(state), "clean", "--max-age", "0s", "--json")
    assert sorted(json.loads(done.stdout)["forgotten"]) == sorted([first, second])
    assert list((state / "runs").iterdir()) == [] and list((work / "runs").iterdir()) == []
    assert cli("--state-dir", str(state), "cache", "prune", "--max-size", "0").returncode == 0
    assert json.loads(cli("--state-dir", str(state), "cache", "list", "--json").stdout)[
        "count"] == 0


def _running(service: LocalService, instance_id: str) -> None:
    """Wait until the job's run has finished 3 tasks: the slow one (CNVKIT_COHORT, the last but
    one) is then still to finish, also in a job that reuses its reference (5 tasks)."""
    deadline = time.monotonic() + 180
    while int(job(service, instance_id)["progress"].split("/")[0]) < 3:
        assert time.monotonic() < deadline, job(service, instance_id)
        time.sleep(0.3)


def test_a_restarted_service_follows_and_resumes_runs_in_the_work_dir(site, tmp_path):
    slow = tmp_path / "slow.config"
    slow.write_text("process { withName: 'CNVKIT_COHORT' { beforeScript = 'sleep 8' } }\n")
    state, work = folders(site, "restarts")
    service = serve(site, "restarts", "-c", str(slow))
    store = JobStore(state / "jobs.sqlite")
    followed = submit(service, request_for(site, "followed"))
    _running(service, followed)
    service.kill()  # its Nextflow goes on: the next start follows it
    service = serve(site, "restarts", "-c", str(slow))
    try:
        assert wait_for(service, followed, {"FINISHED", "FAILED"})["status"] == "FINISHED"
        resumed = submit(service, request_for(site, "resumed"))
        _running(service, resumed)
    finally:
        service.kill()
    os.killpg(store.get(resumed).pid, signal.SIGKILL)  # and its Nextflow: the machine went down
    time.sleep(1)
    service = serve(site, "restarts", "-c", str(slow))
    try:
        final = wait_for(service, resumed, {"FINISHED", "FAILED"})
    finally:
        assert service.stop() == 0
    assert final["status"] == "FINISHED", final["message"]
    assert store.get(followed).attempts == 1 and store.get(resumed).attempts == 2
    # resumed from the task folders in the work dir, by the head's cache in the state dir
    trace = (Path(final["output_dir"]) / "pipeline_info" / "trace.tsv").read_text()
    assert "\tCACHED\t" in trace
    for name in ("followed", "resumed"):
        assert manifest.verify(Path(request_for(site, name)["output_dir"])) == []
    only_local_things_in(state)
    no_database_or_lock_in(work)


def test_run_records_the_work_dir_and_log_reads_a_failed_task_there(site, tmp_path):
    state, work = tmp_path / "local" / "state", tmp_path / "shared" / "work"
    request = tmp_path / "request.json"
    request.write_text(json.dumps(seed_request(site["cohort"], tmp_path / "out")))
    failing = tmp_path / "fail.config"
    failing.write_text("process { withName: 'CNVKIT_REFERENCE' { beforeScript = "
                       "'echo broken on purpose >&2; exit 3' } }\n")
    failed = launch(["--work-dir", str(work), "run", str(request), "--stub", "-c",
                     str(failing)], state, cwd=tmp_path)
    assert failed.returncode == 3, failed.stderr
    instance_id = failed.stdout.splitlines()[0].split(": ", 1)[1]
    assert json.loads((state / "work-dir.json").read_text())["work_dir"] == os.path.realpath(work)
    assert list((work / "runs" / instance_id / "work").glob("*/*/.command.sh"))  # for a retry
    shown = json.loads(launch(["log", instance_id, "--json"], state).stdout)
    assert [task["stderr"] for task in shown["failed_tasks"]] == ["broken on purpose\n"]
    resumed = launch(["run", str(request), "--stub", "--resume"], state, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == failed.stdout.splitlines()[0]
    assert "\tCACHED\t" in (tmp_path / "out" / "pipeline_info" / "trace.tsv").read_text()
    only_local_things_in(state)
    no_database_or_lock_in(work)


def test_refusals_of_the_layout_name_the_folder_and_the_fix(site, tmp_path):
    state = tmp_path / "state"
    in_root = cli("--state-dir", str(state), "--work-dir", str(site["data"] / "work"), "serve",
                  "--service-config", str(site["config"]), "--port", "0")
    assert in_root.returncode == 1
    assert (f"the work dir (--work-dir) {site['data'] / 'work'} lies in a data root, or holds "
            "one") in in_root.stderr
    assert not state.exists() and not (site["data"] / "work").exists()
    inside = cli("--state-dir", str(state), "--work-dir", str(state / "shared"), "serve",
                 "--service-config", str(site["config"]), "--port", "0")
    assert inside.returncode == 1 and "lies in the state dir" in inside.stderr
    renamed = cli("run", str(tmp_path / "missing.json"), "--work-dir", str(tmp_path / "w"))
    assert "`run --work-dir` is deprecated" in renamed.stderr
    assert "--nextflow-work-dir" in renamed.stderr
