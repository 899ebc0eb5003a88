"""The job service's worker pool: runs submitted jobs a few at a time, oldest first, and takes
back the jobs a previous service process left unfinished.

The job store is the queue's durable form: on start, jobs that were running are followed again
(their Nextflow is still running) or resumed with `-resume`, then LAUNCHING jobs run in the
order they were submitted.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from cnvkit_nf.confined import Roots
from cnvkit_nf.input_store import InputStore
from cnvkit_nf.jobs import LAUNCHING, Job, JobStore
from cnvkit_nf.problems import Problem, errors, summary
from cnvkit_nf.reference_cache import ReferenceCache
from cnvkit_nf.request import validate_request
from cnvkit_nf.runner import RunOptions
from cnvkit_nf.submission import Execution, Plan, new_job, plan

RUNNER = "service"
MAX_ATTEMPTS = 3  # Nextflow runs of one job; a job interrupted this often is not resumed again


class WorkerPool:
    """`concurrency` threads, each bringing one job at a time to its end."""

    def __init__(self, store: JobStore, state_dir: Path, options: RunOptions,
                 storage_config: str | None, roots: Callable[[str], Roots],
                 concurrency: int = 1, log: Callable[[str], None] = print,
                 admit: Callable[[Job], list[Problem]] = lambda job: [],
                 references: ReferenceCache | None = None):
        self.store, self.state_dir, self.options = store, state_dir, options
        self.storage_config, self.concurrency, self.log = storage_config, concurrency, log
        self.roots = roots  # a project's data roots
        self.inputs = InputStore(state_dir / "inputs")  # the jobs' private inputs
        self.admit = admit  # the service's rules, checked again when a job's turn comes
        self.references = references  # references kept between a project's jobs
        self._queue: queue.Queue[str] = queue.Queue()
        self._plans: dict[str, Plan] = {}
        self._active: dict[str, Execution] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Queue the jobs left by an earlier process (running ones first), start the workers."""
        left = self.store.unfinished(RUNNER)
        for job in sorted(left, key=lambda job: job.status == LAUNCHING):
            self._queue.put(job.instance_id)
        if left:
            self.log(f"taking back {len(left)} unfinished job(s)")
        for number in range(self.concurrency):
            threading.Thread(target=self._work, name=f"worker-{number}", daemon=True).start()

    def submit(self, job_plan: Plan, project: str, owner: str) -> Job:
        """Record a checked request as a LAUNCHING job and queue it: records and queue keep
        the same order, whatever the number of callers."""
        with self._lock:
            job = new_job(self.store, job_plan, self.state_dir, project=project, owner=owner,
                          runner=RUNNER)
            self._plans[job.instance_id] = job_plan
            self._queue.put(job.instance_id)
        return job

    def retry(self, instance_id: str) -> Job:
        """Queue an ended job again, LAUNCHING: its inputs are checked again at its turn and
        its finished tasks are reused. Raises IllegalTransition or Occupied (jobs.py)."""
        with self._lock:
            job = self.store.retry(instance_id)
            self._queue.put(instance_id)
        return job

    def active(self, instance_id: str) -> bool:
        """Whether a worker is bringing this job to its end now."""
        with self._lock:
            return instance_id in self._active

    @property
    def running(self) -> int:
        """How many jobs the workers are bringing to their end now."""
        with self._lock:
            return len(self._active)

    def cancel(self, instance_id: str) -> Job | None:
        """Cancel a job that has not ended; None when it has (or is already being cancelled)."""
        with self._lock:
            execution = self._active.get(instance_id)
            if execution is not None:
                return self.store.get(instance_id) if execution.cancel() else None
            self._plans.pop(instance_id, None)
            # a running job no worker follows yet (after a restart): its worker stops it
            return self.store.withdraw(instance_id) or self.store.request_cancel(instance_id)

    def _work(self) -> None:
        while True:
            instance_id = self._queue.get()
            with self._lock:
                job = self.store.get(instance_id)
                if job is None or job.final:
                    continue
                execution = self._execution(job)
                if execution is None:
                    continue
                self._active[instance_id] = execution
            try:
                final = execution.execute()
                self.log(f"{instance_id}: {final.status} {final.progress}")
            except Exception as err:  # noqa: BLE001 - a job's failure must not stop the worker
                self.log(traceback.format_exc())
                self.store.fail(instance_id, f"internal error of the job service: {err}")
            finally:
                with self._lock:
                    del self._active[instance_id]

    def _execution(self, job: Job) -> Execution | None:
        """How to bring a job to its end; None when it ended here (cannot be run or resumed)."""
        refused = errors(self.admit(job)) if job.status == LAUNCHING else []
        if refused:  # e.g. a folder replaced by a link out of the data roots while it waited
            self._plans.pop(job.instance_id, None)
            self.store.fail(job.instance_id, f"refused when its turn came: {summary(refused)}")
            return None
        job_plan = self._plans.pop(job.instance_id, None)
        if job_plan is None:
            job_plan, reason = self._plan_again(job)
            if job_plan is None:
                self.store.fail(job.instance_id,
                                f"cannot go on after the service restarted: {reason}")
                return None
        return Execution(self.store, job, job_plan, self.state_dir, self.options,
                         log=self.log, max_attempts=MAX_ATTEMPTS,
                         roots=self.roots(job.project), inputs=self.inputs,
                         references=self.references)

    def _plan_again(self, job: Job) -> tuple[Plan | None, str]:
        """The plan of a job taken back from an earlier process: a queued job's inputs are
        checked again; a running job's are not (its run is already under way)."""
        validation = validate_request(job.request)
        if not validation.ok:
            return None, summary(validation.problems)
        job_plan, problems = plan(validation, self.storage_config, self.roots(job.project),
                                  check_inputs=job.status == LAUNCHING)
        if errors(problems):
            return None, summary(problems)
        return job_plan, ""
