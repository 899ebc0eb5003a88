"""The job service's one job API, under both of its faces (the seed's REST API, `seed_api`, and
GA4GH WES, `wes`): submit, get, list, cancel, retry and log the jobs of a caller's projects.

A call is refused with a `JobError` of a kind a face can tell apart (`Invalid`, `NotFound`,
`Conflict`, `Busy`); none carries a face's form (status, code, body): each face answers it in
its own. A call never waits on a job: jobs run in the worker pool.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cnvkit_nf.contract.problems import Problem, errors, format_problem, summary
from cnvkit_nf.contract.request import validate_text
from cnvkit_nf.launch import local_files, samplesheets
from cnvkit_nf.launch.runner import job_log
from cnvkit_nf.launch.submission import occupied, plan
from cnvkit_nf.service.config import Caller, ServiceConfig
from cnvkit_nf.service.workers import RUNNER, WorkerPool
from cnvkit_nf.state.jobs import (
    CANCELLED,
    FAILED,
    LAUNCHING,
    IllegalTransition,
    Job,
    JobStore,
    Occupied,
)


class JobError(Exception):
    """A call of the job API refused; the message says why."""


class Invalid(JobError):
    """A request (or a call's arguments) with errors: `problems`."""

    def __init__(self, problems: list[Problem]):
        super().__init__(summary(problems))
        self.problems = list(problems)


class NotFound(JobError):
    """No job of this service by that id among the caller's projects' (another project's
    jobs are not found either)."""

    def __init__(self, instance_id: str):
        super().__init__(f"no job {instance_id}")
        self.instance_id = instance_id


class Conflict(JobError):
    """The job's state does not allow the call."""


class Busy(JobError):
    """As many jobs as the service takes are already waiting."""


@dataclass
class Jobs:
    """The jobs of the service's store, run by its worker pool, under its configuration."""

    store: JobStore
    pool: WorkerPool
    config: ServiceConfig
    storage_config: str | None

    def submit(self, text: str, project: str, caller: Caller) -> tuple[Job, list[str]]:
        """Check a request (JSON text) as `cnvkit-nf run` does, plus the service's rules, and
        queue it as a job of `project`: the job and the warnings."""
        validation = validate_text(text)
        roots = self.config.roots(project)
        if validation.request is not None:  # a samplesheet only where the project may read
            refused = errors(self.config.request_problems(validation.request, project))
            if not refused:
                validation = samplesheets.with_rows(
                    validation, lambda sheet: validate_text(text, sheet=sheet), roots,
                    self.storage_config)
        problems, request = validation.problems, validation.request
        if request is not None:
            problems = problems + self.config.request_problems(request, project)
        if errors(problems):  # the paths too (but never more of them than the limit allows)
            if request is not None and not self.config.limit_problems(request):
                problems = problems + local_files.path_problems(request, roots)
            raise Invalid(errors(problems))
        self._queue_limit()
        job_plan, checked = plan(request, self.storage_config, roots,
                                 limits=self.config.check_limits())
        if errors(checked):
            raise Invalid(errors(checked))
        try:
            job = self.pool.submit(job_plan, project, caller.owner)
        except Occupied as err:
            raise Invalid([occupied(err)]) from None
        return job, [format_problem(p) for p in problems + checked if p.severity == "warning"]

    def get(self, projects: Collection[str], instance_id: str) -> Job:
        """A job this service ran for one of `projects`."""
        job = self.store.get(instance_id)
        if job is None or job.project not in projects or job.runner != RUNNER:
            raise NotFound(instance_id)
        return job

    def list(self, projects: Collection[str], *, instance_id: str | None = None,
             start: int | None = None, end: int | None = None, service_only: bool = False,
             limit: int = 10, offset: int = 0, after: tuple[int, str] | None = None
             ) -> tuple[int, list[Job]]:
        """A page of the jobs of `projects`, newest first, and how many match in all (see
        `JobStore.list`, `after` too); `service_only`: only those this service ran."""
        return self.store.list(sorted(projects), instance_id=instance_id, start=start, end=end,
                               runner=RUNNER if service_only else None, limit=limit,
                               offset=offset, after=after)

    def cancel(self, projects: Collection[str], instance_id: str) -> Job:
        """Cancel a job that has not ended; Conflict when it has (or is being cancelled)."""
        job = self.get(projects, instance_id)
        cancelled = None if job.final else self.pool.cancel(instance_id)
        if cancelled is None:
            current = self.store.get(instance_id) or job
            raise Conflict(f"operation not supported: job {instance_id} is {current.status} "
                           "and cannot be cancelled")
        return cancelled

    def retry(self, projects: Collection[str], instance_id: str) -> Job:
        """Queue a FAILED or CANCELLED job again (its finished tasks are reused)."""
        job = self.get(projects, instance_id)
        if job.status not in (FAILED, CANCELLED):
            raise Conflict(f"operation not supported: job {instance_id} is {job.status}; only "
                           "a FAILED or CANCELLED job can be retried")
        self._queue_limit()
        try:
            return self.pool.retry(instance_id)
        except IllegalTransition:  # it was retried meanwhile
            raise Conflict(f"operation not supported: job {instance_id} is already being "
                           "retried") from None
        except Occupied as err:
            raise Invalid([occupied(err)]) from None

    def log(self, projects: Collection[str], instance_id: str) -> dict:
        """What a job's run left to read (`runner.job_log`)."""
        return job_log(self.get(projects, instance_id))

    def active(self, instance_id: str) -> bool:
        """Whether a worker is staging or running the job now."""
        return self.pool.active(instance_id)

    def load(self) -> dict[str, int]:
        """The jobs being brought to their end, those waiting, and the live workers."""
        return {"running": self.pool.running, "queued": self._queued(),
                "workers": self.pool.workers}

    def _queued(self) -> int:
        return self.store.count(RUNNER, LAUNCHING)

    def _queue_limit(self) -> None:
        limit = self.config.limits["max_queued"]
        if self._queued() >= limit:
            raise Busy(f"system limit reached: {limit} jobs are already waiting")
