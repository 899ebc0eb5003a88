"""The one job API under both faces (cnvkit_nf/service/job_api.py): whose jobs a call reaches,
and its refusals, typed, on a job store of its own and a worker pool that runs nothing."""

from __future__ import annotations

import json

import pytest

from cnvkit_nf.contract.problems import summary
from cnvkit_nf.service.config import DEFAULT_LIMITS, Caller, ServiceConfig
from cnvkit_nf.service.job_api import Busy, Conflict, Invalid, Jobs, NotFound
from cnvkit_nf.service.workers import RUNNER
from cnvkit_nf.state.jobs import CANCELLED, FAILED, LAUNCHING, Failure, JobStore

REQUEST = {"experimental_inputs": ["/data/S1.bam"], "control_inputs": [],
           "output_dir": "/data/out/", "ref": "/data/r.fa", "bed": "/data/t.bed"}
ALICE = Caller("alice", frozenset({"lab-a"}))


class Pool:
    """The worker pool's calls the job API makes, on the store alone: nothing runs."""

    running, workers = 0, 1

    def __init__(self, store: JobStore):
        self.store = store

    def retry(self, instance_id: str):
        return self.store.retry(instance_id)

    def cancel(self, instance_id: str):
        return self.store.withdraw(instance_id) or self.store.request_cancel(instance_id)

    def active(self, instance_id: str) -> bool:
        return False


@pytest.fixture
def jobs(tmp_path) -> Jobs:
    store = JobStore(tmp_path / "jobs.sqlite")
    config = ServiceConfig(limits={**DEFAULT_LIMITS, "max_queued": 2})
    return Jobs(store, Pool(store), config, None)


def _job(jobs: Jobs, project: str = "lab-a", runner: str = RUNNER):
    return jobs.store.create(REQUEST, project=project, runner=runner)


def test_a_call_reaches_only_the_services_jobs_of_the_callers_projects(jobs):
    own, other = _job(jobs), _job(jobs, "lab-b")
    local = _job(jobs, runner="cli")
    assert jobs.get({"lab-a"}, own.instance_id).instance_id == own.instance_id
    for instance_id in (other.instance_id, local.instance_id, "no-such-job"):
        with pytest.raises(NotFound) as refused:
            jobs.get({"lab-a"}, instance_id)
        assert refused.value.instance_id == instance_id
        for call in (jobs.cancel, jobs.retry, jobs.log):
            with pytest.raises(NotFound):
                call({"lab-a"}, instance_id)
    assert jobs.list({"lab-a"})[0] == 2
    assert [job.instance_id for job in jobs.list({"lab-a"}, service_only=True)[1]] \
        == [own.instance_id]
    assert jobs.list({"lab-a", "lab-b"}, service_only=True)[0] == 2


def test_cancel_and_retry_say_when_the_jobs_state_does_not_allow_them(jobs):
    job = _job(jobs)
    with pytest.raises(Conflict, match=f"job {job.instance_id} is LAUNCHING; only a FAILED or "
                                       "CANCELLED job can be retried"):
        jobs.retry({"lab-a"}, job.instance_id)
    assert jobs.cancel({"lab-a"}, job.instance_id).status == CANCELLED
    with pytest.raises(Conflict, match=f"^operation not supported: job {job.instance_id} is "
                                       "CANCELLED and cannot be cancelled$"):
        jobs.cancel({"lab-a"}, job.instance_id)
    assert jobs.retry({"lab-a"}, job.instance_id).status == LAUNCHING


def test_a_full_queue_refuses_submissions_and_retries(jobs):
    failed = _job(jobs)
    jobs.store.fail(failed.instance_id, "no FASTA", Failure.REFUSED)
    _job(jobs), _job(jobs)  # max_queued LAUNCHING
    assert jobs.load() == {"running": 0, "queued": 2, "workers": 1}
    with pytest.raises(Busy, match="^system limit reached: 2 jobs are already waiting$"):
        jobs.retry({"lab-a"}, failed.instance_id)
    assert jobs.store.get(failed.instance_id).status == FAILED


def test_a_request_with_errors_is_invalid_with_its_problems(jobs):
    with pytest.raises(Invalid) as refused:
        jobs.submit(json.dumps(REQUEST)[:-1], "lab-a", ALICE)
    assert refused.value.problems and str(refused.value) == summary(refused.value.problems)
    assert jobs.list({"lab-a"})[0] == 0


def test_a_jobs_log_gives_its_failure_and_kind(jobs):
    job = _job(jobs)
    jobs.store.fail(job.instance_id, "refused when its turn came: ref: gone", Failure.REFUSED)
    log = jobs.log({"lab-a"}, job.instance_id)
    assert (log["status"], log["failure_kind"]) == (FAILED, "refused")
    assert log["failure"] == "refused when its turn came: ref: gone"
