"""The job service under faults and hostile load, over real HTTP with the real `nextflow` (stub
runs): stops and kills while results are published, runs that end while the service is down,
cancel/retry storms with several workers, slow input checks beside everyone's queries, and
retries refused when their turn comes."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from cnvkit_nf.launch.runner import exit_file
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage import manifest
from cnvkit_nf.storage.publish_local import HIDDEN
from scaffold.local_service import LocalService
from tests.service import test_service
from tests.service.test_service import ALICE, BOB, JOBS, job, request_for, start, submit, wait_for

site = test_service.site  # the fixture: data roots per project, a cohort, the config

pytestmark = pytest.mark.e2e

CONCURRENCY = 3
WES = "/ga4gh/wes/v1"
ENDED = {"FINISHED", "FAILED", "CANCELLED"}


@pytest.fixture(scope="module")
def held(site, tmp_path_factory):
    """A stub service of CONCURRENCY workers whose CNVKIT_SAMPLE tasks wait while the flag
    file `hold` exists, and a FASTA (gzip, with a 1 Gb contig beyond the cohort's) that takes
    the input check seconds to read."""
    folder = tmp_path_factory.mktemp("held")
    flag = folder / "hold"
    config = folder / "hold.config"
    config.write_text("process { withName: 'CNVKIT_SAMPLE' { beforeScript = "
                      f"\"while [ -e '{flag}' ]; do sleep 0.2; done\" }} }}\n")
    slow = site["data"] / "lab-a" / "slow" / "slow.fa.gz"
    slow.parent.mkdir()
    with gzip.open(slow, "wb", compresslevel=1) as fasta:
        fasta.write(site["cohort"].ref.read_bytes())
        fasta.write(b">chrPad\n")
        block = (b"ACGT" * 25 + b"\n") * 10_000
        for _ in range(1_000):  # 1 Gb of sequence, a few MB compressed
            fasta.write(block)
    service = start(site, "held-state", "--stub", "--concurrency", str(CONCURRENCY),
                    "-c", str(config))
    yield {"site": site, "service": service, "flag": flag, "slow": slow}
    flag.unlink(missing_ok=True)
    assert service.stop() == 0


@contextmanager
def workers_held(held: dict, name: str) -> Iterator[list[str]]:
    """Every worker busy with a job held in CNVKIT_SAMPLE; cancelled when the block ends."""
    service = held["service"]
    held["flag"].touch()
    blockers = [submit(service, request_for(held["site"], f"{name}-{n}", **own_reference(n)))
                for n in range(CONCURRENCY)]
    try:
        for blocker in blockers:
            wait_for(service, blocker, {"RUNNING"}, timeout=120)
        yield blockers
    finally:
        held["flag"].unlink(missing_ok=True)
        for blocker in blockers:
            service.call("DELETE", f"{JOBS.format('lab-a')}/{blocker}", ALICE)
        for blocker in blockers:
            wait_for(service, blocker, ENDED, timeout=120)


def own_reference(number: int) -> dict:
    """Request changes that give a job a reference of its own (no waiting for another job's
    build of the same reference)."""
    return {"antitarget_conf": f"-a {100_000 + number}"}


def serve_log(service: LocalService) -> str:
    return service.log.read_text()


def timed(service: LocalService, *call) -> float:
    """Seconds one call took; it must be answered 200."""
    started = time.monotonic()
    status, body = service.call(*call)
    assert status == 200, body
    return time.monotonic() - started


def health(service: LocalService) -> dict:
    status, body = service.call("GET", "/health")
    assert status == 200
    return body


# --- several workers: each job in one of them, ever -----------------------------------------

def test_a_cancel_and_retry_storm_runs_each_job_once(held):
    """With --concurrency 2, a queued job cancelled then retried was run by two workers:
    published twice, and a worker thread died for good."""
    service, jobs = held["service"], JOBS.format("lab-a")
    with workers_held(held, "storm-blocker"):
        targets = [submit(service, request_for(held["site"], f"storm-{n}",
                                               **own_reference(10 + n))) for n in range(3)]
        for _ in range(5):
            for target in targets:
                assert service.call("DELETE", f"{jobs}/{target}", ALICE) == (200, {})
                assert service.call("POST", f"{jobs}/{target}/retry", ALICE)[0] == 200
        assert health(service)["queued"] == len(targets)
    finals = [wait_for(service, target, ENDED, timeout=180) for target in targets]
    assert [final["status"] for final in finals] == ["FINISHED"] * len(targets), finals
    log = serve_log(service)
    for final in finals:
        published = [line for line in log.splitlines()
                     if line.startswith("published ") and line.endswith(
                         f" to {final['output_dir']} in " + line.rsplit(" in ", 1)[1])]
        assert len(published) == 1, published
        assert manifest.verify(Path(final["output_dir"])) == []
    assert "error of the worker pool" not in log and "internal error" not in log
    assert health(service)["workers"] == CONCURRENCY


# --- slow input checks: no lock held, no query starved ---------------------------------------

def test_slow_input_checks_starve_no_query_and_hold_no_lock(held):
    """Sixteen POSTs naming a slow gzip FASTA made another project's GET wait 98 s (checks ran
    on the API's threads); a retried job's inputs were checked again under the worker pool's
    lock, which /health, cancels and WES calls wait for (37 s)."""
    service, jobs = held["service"], JOBS.format("lab-a")
    slow = {"ref": str(held["slow"])}
    with workers_held(held, "slow-blocker") as blockers:
        started = time.monotonic()
        assert service.call("POST", jobs, ALICE, request_for(held["site"], "slow-probe",
                                                             **slow))[0] == 201
        check_seconds = time.monotonic() - started
        assert check_seconds > 2, "the FASTA must take the check seconds to read"

        def post(number: int) -> int:
            request = request_for(held["site"], f"slow-{number}", **slow)
            return service.call("POST", jobs, ALICE, request)[0]

        with ThreadPoolExecutor(16) as pool:
            posts = pool.map(post, range(16))
            time.sleep(0.5)
            reads = [timed(service, "GET", JOBS.format("lab-b"), BOB) for _ in range(20)]
            statuses = sorted(posts)
        assert max(reads) < 1.0, reads  # lab-b's queries meanwhile
        assert statuses.count(429) == 16 - 4 and statuses.count(201) == 4, statuses
        waiting = [entry["instance_id"] for entry in service.call(
            "GET", f"{jobs}?limit=100", ALICE)[1]["instances"] if entry["status"] == "LAUNCHING"]
        assert len(waiting) == 5
        for instance_id in waiting:
            assert service.call("DELETE", f"{jobs}/{instance_id}", ALICE) == (200, {})

        # one worker free, one retried job: its inputs are checked again at its turn
        assert service.call("DELETE", f"{jobs}/{blockers[0]}", ALICE) == (200, {})
        wait_for(service, blockers[0], ENDED, timeout=120)
        retried = waiting[0]
        assert service.call("POST", f"{jobs}/{retried}/retry", ALICE)[0] == 200
        seen, taken = set(), []
        deadline = time.monotonic() + check_seconds
        while time.monotonic() < deadline:
            taken += [timed(service, "GET", "/health"),
                      timed(service, "GET", JOBS.format("lab-b"), BOB),
                      timed(service, "GET", f"{WES}/runs", BOB)]
            status, state = service.call("GET", f"{WES}/runs/{retried}/status", ALICE)
            seen.add(state["state"])
        assert "INITIALIZING" in seen  # the calls were answered while it was being checked
        assert max(taken) < 1.0, taken
        service.call("DELETE", f"{jobs}/{retried}", ALICE)
        wait_for(service, retried, ENDED, timeout=120)


# --- why a job failed, typed -----------------------------------------------------------------

def test_a_retry_refused_at_its_turn_gives_the_reason_and_its_kind(held):
    """A retry refused when its turn came said "cannot go on after the service restarted",
    and WES reported a system failure (its kind was parsed from the message)."""
    service, jobs = held["service"], JOBS.format("lab-a")
    tumour = held["site"]["cohort"].bams["Son_S2_ALL"]
    copy = held["site"]["data"] / "lab-a" / "Gone_S9.bam"
    os.link(tumour, copy)
    (copy.parent / "Gone_S9.bam.bai").hardlink_to(Path(f"{tumour}.bai"))
    with workers_held(held, "refused-blocker"):
        instance_id = submit(service, request_for(held["site"], "refused",
                                                  experimental_inputs=[str(copy)]))
        assert service.call("DELETE", f"{jobs}/{instance_id}", ALICE) == (200, {})
        copy.unlink()
        assert service.call("POST", f"{jobs}/{instance_id}/retry", ALICE)[0] == 200
    final = wait_for(service, instance_id, ENDED, timeout=120)  # a worker's turn: refused
    assert final["status"] == "FAILED"
    assert final["message"].startswith("refused when its turn came: experimental_inputs[0]: ")
    assert "Gone_S9.bam" in final["message"] and "does not exist" in final["message"]
    status, log = service.call("GET", f"{jobs}/{instance_id}/log", ALICE)
    assert status == 200 and log["failure_kind"] == "refused"
    status, state = service.call("GET", f"{WES}/runs/{instance_id}/status", ALICE)
    assert state["state"] == "EXECUTOR_ERROR"


# --- restarts --------------------------------------------------------------------------------

def test_a_run_that_ends_while_the_service_is_down_keeps_its_progress(site):
    """It was recorded FINISHED 2/5 after the restart: the progress of the moment of the kill."""
    service = start(site, "ended-while-down-state", "--stub")
    instance_id = submit(service, request_for(site, "ended-while-down"))
    deadline = time.monotonic() + 120
    while (current := job(service, instance_id))["status"] != "RUNNING" or \
            current["progress"] in ("0/0",):
        assert time.monotonic() < deadline, current
        time.sleep(0.1)
    service.kill()
    record = JobStore(service.state_dir / "jobs.sqlite").get(instance_id)
    done, total = map(int, record.progress.split("/"))
    assert done < total, "the run must be killed mid-way"
    deadline = time.monotonic() + 120
    while not exit_file(Path(record.run_dir)).exists():  # it ends while nobody watches
        assert time.monotonic() < deadline
        time.sleep(0.2)
    service.start()
    try:
        final = wait_for(service, instance_id, ENDED, timeout=120)
    finally:
        assert service.stop() == 0
    assert final["status"] == "FINISHED", final
    assert final["progress"] == f"{total}/{total}"


def _catch_publishing(out: Path, timeout: float = 120) -> bool:
    """Wait until a publication into `out` is under way (its hidden folder is there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(name.startswith(HIDDEN) for name in os.listdir(out)):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_stop_or_kill_during_publication_leaves_a_result_that_verifies(site, how):
    """SIGTERM (the documented stop) during publication left a hidden .publishing-* folder in
    the output folder: after a restart the job said FINISHED but `verify` failed on it."""
    service = start(site, f"publish-{how}-state", "--stub")
    try:
        for attempt in range(5):  # until the signal lands while the files are being copied
            request = request_for(site, f"publish-{how}-{attempt}")
            out = Path(request["output_dir"])
            instance_id = submit(service, request)
            assert _catch_publishing(out)
            if how == "stop":
                service.process.send_signal(signal.SIGTERM)
                assert _ended(service, timeout=90) == 0
            else:
                service.kill()
            caught = any(name.startswith(HIDDEN) for name in os.listdir(out))
            if how == "stop":
                assert not caught  # completed or rolled back before the service exited
                assert not (out / manifest.NAME).exists() or manifest.verify(out) == []
            ended_first = job_status(service, instance_id)
            service.start()
            final = wait_for(service, instance_id, ENDED, timeout=120)
            assert final["status"] == "FINISHED", final
            assert manifest.verify(out) == []  # leftovers gone, the result whole
            assert not any(name.startswith(HIDDEN) for name in os.listdir(out))
            if ended_first != "FINISHED" and (how == "stop" or caught):
                break  # the signal came while it published
        else:
            pytest.fail("the signal never came while the results were being published")
    finally:
        assert service.stop() == 0


def _ended(service: LocalService, timeout: float) -> int:
    """The stopped service's exit status; a failure that shows its log when it did not end."""
    try:
        return service.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the service did not end {timeout} s after SIGTERM; its log ends:\n"
                    + "\n".join(service.log.read_text().splitlines()[-20:]))


def job_status(service: LocalService, instance_id: str) -> str:
    """A job's status as the (stopped) service recorded it."""
    return JobStore(service.state_dir / "jobs.sqlite").get(instance_id).status


def test_a_stopped_publication_rolls_back(tmp_path):
    """The library-level guarantee behind the stop: once stopped, nothing of the new result
    stays, and the folder is as it was."""
    from cnvkit_nf.storage.confined import everywhere
    from cnvkit_nf.storage.publish_local import publish

    results, out = tmp_path / "results", tmp_path / "out"
    for number in range(3000):
        (results / f"d{number % 7}").mkdir(parents=True, exist_ok=True)
        (results / f"d{number % 7}" / f"f{number}.txt").write_text(f"{number}\n" * 100)
    manifest.write(results)
    out.mkdir()
    (out / "earlier.txt").write_text("kept\n")
    stop = threading.Event()
    threading.Thread(target=lambda: _catch_publishing(out) and stop.set()).start()
    with pytest.raises(manifest.Interrupted):
        publish(results, str(out), everywhere(), stop=stop)
    assert sorted(os.listdir(out)) == ["earlier.txt"]
