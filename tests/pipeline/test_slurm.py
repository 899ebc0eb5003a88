"""The slurm profile on a real single-node Slurm cluster (scaffold/slurm.py, one per session):
the seed-shaped request through the launcher and through the job service (restarted mid-run),
cancels, and tasks that Slurm ends for their time or memory limit. Slurm's own job completion
log is the witness of what ran where."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnvkit_nf.launch.runner import run_alive
from cnvkit_nf.state.jobs import JobStore
from scaffold.local_service import LocalService
from scaffold.slurm import INSTALL, PARTITIONS, SlurmCluster, missing_tools
from tests.conftest import LAUNCHER, ROOT, launch, seed_request
from tests.pipeline.test_coverage_chunks import coverage_by_hand
from tests.pipeline.test_pipeline_e2e import read_table, without_date

pytestmark = pytest.mark.e2e

DATA = ROOT / "tests" / "data" / "slurm"
TOKEN = "slurm-lab-token-0123456789"
JOBS = "/v2.0/lab/gene/tools/cnvkit"
# Files whose bytes hold the time they were written; the VCF is compared without its date.
STAMPED = ("report.html", ".pdf", ".vcf")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The cluster, started once; it fails (not skips) when Slurm is not installed."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"Slurm is not installed (missing {', '.join(missing)}): run {INSTALL}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm") / "cluster").start()
    yield cluster
    cluster.stop()


def slurm_env(slurm: SlurmCluster, **changes: str) -> dict[str, str]:
    """This environment, pointed at the cluster."""
    return {**os.environ, **slurm.env(), **changes}


def wait_until(condition, what: str, timeout: float = 120):
    """The first true value of `condition()`, polled; an assertion error after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def queued(slurm: SlurmCluster, folder: Path, state: str | None = None) -> list[str]:
    """IDs of the jobs in `squeue` whose work directory is in `folder` (in `state`, if given)."""
    return [job["JobId"] for job in slurm.queue()
            if Path(job["WorkDir"]).is_relative_to(folder) and state in (None, job["State"])]


def assert_tasks_were_slurm_jobs(slurm: SlurmCluster, out: Path, partition: str,
                                 account: str) -> None:
    """Every task of the trace is a completed Slurm job in the job completion log, in the same
    work directory, in the partition and account the settings asked for."""
    trace = read_table(out / "pipeline_info" / "trace.tsv")
    jobs = slurm.completed_jobs()
    assert trace and {row["status"] for row in trace} == {"COMPLETED"}
    for row in trace:
        job = jobs.get(row["native_id"])
        assert job, f"{row['name']}: its native_id {row['native_id']} is no Slurm job"
        assert (job["JobState"], job["WorkDir"], job["Partition"], job["Account"]) == \
            ("COMPLETED", row["workdir"], partition, account), (row, job)


def assert_same_results(out: Path, local_out: Path) -> None:
    """The results of a run equal the local run's, file by file (manifest checksums)."""
    ours, theirs = (
        {f["path"]: f["sha256"] for f in json.loads((o / "manifest.json").read_text())["files"]}
        for o in (out, local_out))
    assert ours.keys() == theirs.keys()
    assert "samples/Son_S2_ALL/Son_S2_ALL.call.cns" in ours
    assert [p for p in theirs if ours[p] != theirs[p] and not p.endswith(STAMPED)] == []
    for vcf in local_out.glob("samples/*/*.vcf"):
        assert without_date(out / vcf.relative_to(local_out)) == without_date(vcf)


def seconds(slurm_time: str) -> float:
    """A job completion log's time (2024-05-01T12:00:00) in seconds since the epoch."""
    return time.mktime(time.strptime(slurm_time, "%Y-%m-%dT%H:%M:%S"))


# --- the launcher ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def launcher_run(slurm, limits_run, cohort, seed_run, tmp_path_factory):
    """`cnvkit-nf run --profile slurm` of the seed-shaped request; queue and account from the
    environment. (After limits_run has started, to overlap its wait.)"""
    work = tmp_path_factory.mktemp("slurm_run")
    request_file = work / "request.json"
    request_file.write_text(json.dumps(seed_request(cohort, work / "results")))
    env = slurm_env(slurm, CNVKIT_NF_SLURM_QUEUE="cnvkit", CNVKIT_NF_SLURM_ACCOUNT="lab-a")
    result = launch(["run", str(request_file), "--profile", "slurm", "-c",
                     str(slurm.nextflow_config)], work / "state", cwd=work, env=env)
    return {"result": result, "out": work / "results"}


def test_launcher_runs_every_task_as_a_slurm_job(slurm, launcher_run, seed_run):
    """Every task a Slurm job of the asked partition and account; the results the local run's."""
    result = launcher_run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "status: FINISHED" in result.stdout
    assert_tasks_were_slurm_jobs(slurm, launcher_run["out"], "cnvkit", "lab-a")
    assert_same_results(launcher_run["out"], seed_run["out"])


# --- the job service ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(cohort, tmp_path_factory) -> dict:
    """A service configuration: a copy of the cohort readable (the service hard-links the files
    it reads, which changes their ctime, and so their identity for the reference cache of the
    other tests' jobs), outputs under data/lab/; the slurm profile's queue and account set by
    params in a -c file (the launcher's come from the environment)."""
    base = tmp_path_factory.mktemp("slurm_site")
    shutil.copytree(cohort.ref.parent, base / "cohort")

    def copied(path: Path) -> Path:
        return base / "cohort" / path.relative_to(cohort.ref.parent)

    served = dataclasses.replace(
        cohort, ref=copied(cohort.ref), bed=copied(cohort.bed),
        annotation=copied(cohort.annotation),
        bams={name: copied(bam) for name, bam in cohort.bams.items()})
    (base / "data" / "lab").mkdir(parents=True)
    config = base / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": TOKEN, "owner": "lab", "projects": ["lab"]}],
        "data_roots": [str(base / "cohort"), str(base / "data" / "{project}")]}))
    site_config = base / "site.config"
    site_config.write_text("params.slurm_queue = 'cnvkit'\nparams.slurm_account = 'lab-b'\n")
    return {"base": base, "config": config, "site_config": site_config, "cohort": served}


def service(slurm: SlurmCluster, site: dict, name: str, *args: str) -> LocalService:
    """`cnvkit-nf serve --profile slurm` on a state dir of its own (not started yet)."""
    state = site["base"] / "states" / name
    state.mkdir(parents=True, exist_ok=True)
    return LocalService(state, site["config"], "--profile", "slurm", "-c",
                        str(slurm.nextflow_config), "-c", str(site["site_config"]), *args,
                        env=slurm.env())


def submit(running: LocalService, request: dict) -> str:
    """POST a request to project lab; its instance_id."""
    status, body = running.call("POST", JOBS, TOKEN, request)
    assert status == 201, body
    return body["instance_id"]


def job(running: LocalService, instance_id: str) -> dict:
    """The job as the query API shows it."""
    status, body = running.call("GET", f"{JOBS}?instance-id={instance_id}", TOKEN)
    assert status == 200, body
    return body["instances"][0]


def wait_for(running: LocalService, instance_id: str, states: set[str]) -> dict:
    """The job once it is in one of `states`."""
    def reached() -> dict | None:
        current = job(running, instance_id)
        return current if current["status"] in states else None
    return wait_until(reached, f"job in {states}", timeout=300)


def test_service_runs_on_slurm_and_follows_its_jobs_across_a_restart(slurm, site, seed_run):
    """Killed (-9) while a Slurm job of its run is running, the service is started again and
    follows the same Nextflow run to its end."""
    running = service(slurm, site, "state").start()
    request = seed_request(site["cohort"], site["base"] / "data" / "lab" / "results")
    try:
        instance_id = submit(running, request)
        wait_until(lambda: queued(slurm, running.state_dir, "RUNNING"), "running Slurm job")
        running.kill()
        store = JobStore(running.state_dir / "jobs.sqlite")
        assert run_alive(store.get(instance_id))  # Nextflow goes on without the service
        running.start()
        final = wait_for(running, instance_id, {"FINISHED", "FAILED", "CANCELLED"})
    finally:
        assert running.stop() == 0
    assert final["status"] == "FINISHED", final["message"]
    assert store.get(instance_id).attempts == 1  # the one run, followed, not started again
    out = Path(request["output_dir"])
    assert_tasks_were_slurm_jobs(slurm, out, "cnvkit", "lab-b")
    assert_same_results(out, seed_run["out"])


# --- limits ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def limits_run(slurm, nextflow_bin, tmp_path_factory):
    """tests/data/slurm/limits.nf run with the pipeline's configuration, in the background: most
    of its minute and a half is a wait for Slurm's time limit, which the pipeline runs overlap."""
    work = tmp_path_factory.mktemp("slurm_limits")
    with open(work / "nextflow.out", "wb") as log:
        run = subprocess.Popen(
            [nextflow_bin, "run", str(DATA / "limits.nf"), "-c", str(ROOT / "nextflow.config"),
             "-c", str(slurm.nextflow_config), "-profile", "slurm", "--output_dir",
             str(work / "out"), "-ansi-log", "false"],
            cwd=work, env=slurm_env(slurm, NXF_OFFLINE="true"), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    yield {"process": run, "out": work / "out", "log": work / "nextflow.out"}
    if run.poll() is None:  # its test did not run: stop it (Nextflow cancels its jobs)
        run.terminate()
        run.wait(timeout=120)


def test_tasks_ended_for_time_or_memory_are_retried_with_more(slurm, limits_run):
    """tests/data/slurm/limits.nf with the pipeline's configuration: Slurm warns one task of
    its 1-minute limit (exit 140), ends another at it (TIMEOUT, exit 143) and kills a third for
    using more than its 300 MB. Each is resubmitted within seconds with twice the limit, and
    fits. No queue setting: the cluster's default partition.

    Slurm's memory kill races the task's shell: when it takes the shell too there is no exit
    status (Slurm's ExitCode 0:9); when it takes only the python the shell reports 137. Both
    are a kill for memory, and both must be retried."""
    assert limits_run["process"].wait(timeout=300) == 0, limits_run["log"].read_text()
    jobs = slurm.completed_jobs()
    attempts: dict[str, list] = {}
    for row in read_table(limits_run["out"] / "pipeline_info" / "trace.tsv"):
        attempts.setdefault(row["process"], []).append((row, jobs[row["native_id"]]))
    expected = {  # process: ends (exit, Slurm's JobState, ExitCode), limits of both attempts
        "WARNED_AT_TIME_LIMIT": ({("140", "FAILED", "140:0")}, ("TimeLimit", "1", "2")),
        "KILLED_AT_TIME_LIMIT": ({("143", "TIMEOUT", "0:0")}, ("TimeLimit", "1", "2")),
        "KILLED_FOR_MEMORY": ({("-", "FAILED", "0:9"), ("137", "FAILED", "137:0")},
                              ("Tres", "mem=300M", "mem=600M")),
    }
    for process, (ends, (limit, first, second)) in expected.items():
        (ended, killed), (retried, fitted) = attempts[process]
        assert ended["status"] == "FAILED", (process, ended)
        assert (ended["exit"], killed["JobState"], killed["ExitCode"]) in ends, \
            (process, ended, killed)
        assert (retried["status"], fitted["JobState"]) == ("COMPLETED", "COMPLETED")
        assert first in killed[limit].split(",") and second in fitted[limit].split(","), \
            (process, killed[limit], fitted[limit])
        assert killed["Partition"] == fitted["Partition"] == PARTITIONS[0]
        noticed = seconds(fitted["SubmitTime"]) - seconds(killed["EndTime"])
        assert 0 <= noticed <= 20, (process, killed, fitted)
    memory_log = Path(attempts["KILLED_FOR_MEMORY"][0][1]["WorkDir"]) / ".command.log"
    assert "exceeded memory limit" in memory_log.read_text()


# --- cancels -----------------------------------------------------------------------------------

def test_ctrl_c_of_the_launcher_cancels_its_slurm_jobs(slurm, cohort, tmp_path):
    """SIGINT to `cnvkit-nf run` while its first task runs on the cluster (slow.config holds
    it there): the task ends CANCELLED in Slurm's log, and nothing of the run is queued."""
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(seed_request(cohort, tmp_path / "results")))
    run = subprocess.Popen(
        [str(LAUNCHER), "--state-dir", str(tmp_path / "state"), "run", str(request_file),
         "--profile", "slurm", "-c", str(slurm.nextflow_config), "-c", str(DATA / "slow.config")],
        cwd=tmp_path, env=slurm_env(slurm), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        running = wait_until(lambda: queued(slurm, tmp_path, "RUNNING"), "running Slurm job")
        run.send_signal(signal.SIGINT)
        output = run.communicate(timeout=120)[0]
    finally:
        run.kill()
    assert run.returncode != 0 and "status: CANCELLED" in output, output
    assert queued(slurm, tmp_path) == []
    jobs = slurm.completed_jobs()
    assert {jobs[job]["JobState"] for job in running} == {"CANCELLED"}


def test_service_cancels_reach_the_cluster(slurm, site):
    """Two jobs at once, each with a Slurm job running; one cancelled by DELETE, the other by
    the WES cancel: nothing of either is left in the queue."""
    running = service(slurm, site, "cancel-state", "-c", str(DATA / "slow.config"),
                      "--concurrency", "2").start()
    runs = running.state_dir / "runs"
    try:
        # different antitarget options: the second job does not wait for the first's reference
        ids = [submit(running, seed_request(site["cohort"], site["base"] / "data" / "lab" / name,
                                            antitarget_conf=option))
               for name, option in (("cancel-a", "-a 100000"), ("cancel-b", "-a 150000"))]
        jobs_running = wait_until(lambda: (found := queued(slurm, runs, "RUNNING"))[1:] and found,
                                  "two running Slurm jobs")
        assert running.call("DELETE", f"{JOBS}/{ids[0]}", TOKEN)[0] == 200
        assert running.call("POST", f"/ga4gh/wes/v1/runs/{ids[1]}/cancel", TOKEN)[0] == 200
        finals = [wait_for(running, instance_id, {"CANCELLED", "FINISHED", "FAILED"})
                  for instance_id in ids]
    finally:
        assert running.stop() == 0
    assert [final["status"] for final in finals] == ["CANCELLED", "CANCELLED"]
    assert queued(slurm, runs) == []
    completed = slurm.completed_jobs()
    assert {completed[job]["JobState"] for job in jobs_running} == {"CANCELLED"}




# --- coverage in chunks (subworkflows/local/coverage) ------------------------------------------

def test_coverage_chunks_are_slurm_jobs_of_their_own_sized_by_bins(slurm, nextflow_bin,
                                                                    small_cohort, tmp_path):
    """A job above coverage_chunk_bins on the cluster: each (sample, chunk) coverage is a Slurm
    job of its own, asking for the memory its bins were given, and the split and the merges
    are jobs too; the merged coverage is the by-hand one (tests/pipeline/test_coverage_chunks)."""
    params = {"samples": small_cohort.request_samples(), "ref": str(small_cohort.ref),
              "bed": str(small_cohort.bed), "antitarget_conf": "-a 5000", "plots": False,
              "coverage_chunk_bins": 200, "output_dir": str(tmp_path / "out")}
    (tmp_path / "params.json").write_text(json.dumps(params))
    result = subprocess.run(
        [nextflow_bin, "run", str(ROOT / "main.nf"), "-profile", "slurm", "-params-file",
         str(tmp_path / "params.json"), "-c", str(slurm.nextflow_config)],
        cwd=tmp_path, capture_output=True, text=True,
        env=slurm_env(slurm, NXF_OFFLINE="true",
                      PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    jobs = slurm.completed_jobs()
    trace = read_table(out / "pipeline_info" / "trace.tsv")
    chunk_rows = [row for row in trace if row["process"].endswith("CNVKIT_COVERAGE_CHUNK")]
    assert len(chunk_rows) >= 3 * len(small_cohort.bams)
    assert len({row["native_id"] for row in chunk_rows}) == len(chunk_rows)
    for row in trace:
        job = jobs[row["native_id"]]
        assert (job["JobState"], job["WorkDir"]) == ("COMPLETED", row["workdir"]), (row, job)
        if row["process"].endswith(("CNVKIT_COVERAGE_CHUNK", "CNVKIT_REFERENCE")):
            number, unit = row["memory"].split()  # as the trace shows it: 1.1 GB
            asked = float(number) * {"GB": 1024, "MB": 1}[unit]
            mem = next(t[4:] for t in job["Tres"].split(",") if t.startswith("mem="))  # 1100M, 2G
            given = float(mem[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[mem[-1]]
            assert given >= 1024 and abs(given - asked) < 52, (row, job)
    assert {row["process"].split(":")[-1] for row in trace} >= \
        {"CNVKIT_COVERAGE_SPLIT", "CNVKIT_COVERAGE_MERGE"}
    coverage_by_hand(small_cohort.bams, out / "reference" / "targets.bed",
                     out / "reference" / "antitargets.bed", tmp_path / "hand")
    for by_hand in (tmp_path / "hand").glob("*.cnn"):
        assert (out / "coverage" / by_hand.name).read_bytes() == by_hand.read_bytes()
