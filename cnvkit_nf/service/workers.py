"""The job service's worker pool: runs submitted jobs a few at a time, oldest first, and takes
back the jobs a previous service process left unfinished.

The job store is the queue's durable form: on start, jobs that were running are followed again
(their Nextflow is still running) or resumed with `-resume`, then LAUNCHING jobs run in the
order they were submitted. A job is brought to its end by at most one worker: the queue holds
each id once, and a worker takes a job only while no other has it. Checks that read files run
outside the pool's lock, which API calls (cancel, health, WES states) need.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from cnvkit_nf.contract.model import Request
from cnvkit_nf.contract.problems import Problem, errors, summary
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.launch import samplesheets
from cnvkit_nf.launch.input_store import InputStore
from cnvkit_nf.launch.local_files import DEFAULT_CHECK, CheckLimits
from cnvkit_nf.launch.runner import RunOptions
from cnvkit_nf.launch.submission import REFUSED_AT_TURN, Execution, Plan, new_job, plan
from cnvkit_nf.reference.cache import ReferenceCache
from cnvkit_nf.state.jobs import LAUNCHING, Failure, IllegalTransition, Job, JobStore
from cnvkit_nf.state.layout import StateDir
from cnvkit_nf.storage.confined import Roots

RUNNER = "service"
MAX_ATTEMPTS = 3  # Nextflow runs of one job; a job interrupted this often is not resumed again
_PREPARING = None  # in `_active`: a worker has taken the job and is checking it


class WorkerPool:
    """`concurrency` threads, each bringing one job at a time to its end."""

    def __init__(self, store: JobStore, state_dir: Path, options: RunOptions,
                 storage_config: str | None, roots: Callable[[str], Roots],
                 concurrency: int = 1, log: Callable[[str], None] = print,
                 admit: Callable[[Request, str], list[Problem]] = lambda request, project: [],
                 references: ReferenceCache | None = None,
                 check_limits: CheckLimits = DEFAULT_CHECK):
        self.store, self.state_dir, self.options = store, state_dir, options
        self.storage_config, self.concurrency, self.log = storage_config, concurrency, log
        self.roots = roots  # a project's data roots
        self.inputs = InputStore(StateDir(state_dir).input_store.path)  # jobs' private inputs
        self.admit = admit  # the service's rules, checked again when a job's turn comes
        self.references = references  # references kept between a project's jobs
        self.check_limits = check_limits  # what each run of the input check may cost
        self.stopping = threading.Event()  # set by `stop`: publications roll back, none start
        self._queue: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()  # ids in `_queue`, each there once
        self._plans: dict[str, Plan] = {}
        self._active: dict[str, Execution | None] = {}  # taken by a worker (None: preparing)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Queue the jobs left by an earlier process (running ones first), start the workers."""
        left = self.store.unfinished(RUNNER)
        with self._lock:
            for job in sorted(left, key=lambda job: job.status == LAUNCHING):
                self._enqueue(job.instance_id)
        if left:
            self.log(f"taking back {len(left)} unfinished job(s)")
        for number in range(self.concurrency):
            worker = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            worker.start()
            self._threads.append(worker)

    def stop(self, grace_seconds: float) -> None:
        """Take no more jobs, and wait (up to `grace_seconds`) for the publications under way
        to complete or roll back; runs go on, and are followed at the next start."""
        self.stopping.set()
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not any(e is not None and e.concluding for e in self._active.values()):
                    return
            time.sleep(0.05)
        self.log(f"a publication did not end within {grace_seconds:.0f} s of the stop")

    def submit(self, job_plan: Plan, project: str, owner: str) -> Job:
        """Record a checked request as a LAUNCHING job and queue it: records and queue keep
        the same order, whatever the number of callers."""
        with self._lock:
            job = new_job(self.store, job_plan, self.state_dir, project=project, owner=owner,
                          runner=RUNNER)
            self._plans[job.instance_id] = job_plan
            self._enqueue(job.instance_id)
        return job

    def retry(self, instance_id: str) -> Job:
        """Queue an ended job again, LAUNCHING: its inputs are checked again at its turn and
        its finished tasks are reused. Raises IllegalTransition or Occupied (jobs.py)."""
        with self._lock:
            job = self.store.retry(instance_id)
            self._enqueue(instance_id)
        return job

    def active(self, instance_id: str) -> bool:
        """Whether a worker is bringing this job to its end now."""
        with self._lock:
            return instance_id in self._active

    @property
    def workers(self) -> int:
        """How many worker threads are alive (all of them, `concurrency`, until a stop)."""
        return sum(worker.is_alive() for worker in self._threads)

    @property
    def running(self) -> int:
        """How many jobs the workers are bringing to their end now."""
        with self._lock:
            return len(self._active)

    def cancel(self, instance_id: str) -> Job | None:
        """Cancel a job that has not ended; None when it has (or is already being cancelled)."""
        with self._lock:
            if instance_id in self._active:
                execution = self._active[instance_id]
                if execution is None:  # being checked: its Execution starts CANCELING
                    return self.store.request_cancel(instance_id)
                return self.store.get(instance_id) if execution.cancel() else None
            self._plans.pop(instance_id, None)
            # a running job no worker follows yet (after a restart): its worker stops it
            return self.store.withdraw(instance_id) or self.store.request_cancel(instance_id)

    def _enqueue(self, instance_id: str) -> None:
        """Queue a job unless it is queued already (under the lock)."""
        if instance_id not in self._queued:
            self._queued.add(instance_id)
            self._queue.put(instance_id)

    def _work(self) -> None:
        """Bring queued jobs to their end, one after another; an error of the pool itself is
        logged and the worker goes on."""
        while not self.stopping.is_set():
            instance_id = self._queue.get()
            if self.stopping.is_set():
                return
            try:
                self._bring_to_end(instance_id)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                self.log(f"{instance_id}: error of the worker pool\n{traceback.format_exc()}")

    def _bring_to_end(self, instance_id: str) -> None:
        """Take the job unless another worker has it or it ended, check it, run it."""
        with self._lock:
            self._queued.discard(instance_id)
            job = self.store.get(instance_id)
            if job is None or job.final or instance_id in self._active:
                return
            self._active[instance_id] = _PREPARING
        try:
            job_plan = self._prepare(job)  # reads files: outside the lock
            if job_plan is None:
                return
            with self._lock:  # a cancel from here on reaches the Execution
                execution = Execution(self.store, self.store.get(instance_id), job_plan,
                                      self.state_dir, self.options, log=self.log,
                                      max_attempts=MAX_ATTEMPTS,
                                      roots=self.roots(job.project), inputs=self.inputs,
                                      references=self.references, stopping=self.stopping)
                self._active[instance_id] = execution
            final = execution.execute()
            self.log(f"{instance_id}: {final.status} {final.progress}")
        except Exception as err:  # noqa: BLE001 - a job's failure must not stop the worker
            self.log(traceback.format_exc())
            try:
                self.store.fail(instance_id, f"internal error of the job service: {err}",
                                Failure.SYSTEM)
            except IllegalTransition:
                pass  # it ended meanwhile
        finally:
            with self._lock:
                self._active.pop(instance_id, None)

    def _prepare(self, job: Job) -> Plan | None:
        """The plan to bring a job to its end; None when it ended here: refused by the
        service's rules at its turn, or unable to go on after a restart (the reason and its
        kind recorded)."""
        job_plan = self._plans.pop(job.instance_id, None)
        validation = samplesheets.with_rows(
            validate_request(job.request),
            lambda sheet: validate_request(job.request, sheet=sheet), self.roots(job.project),
            self.storage_config) if job_plan is None else None
        request = job_plan.request if job_plan is not None else validation.request
        refused = errors(self.admit(request, job.project)) if job.status == LAUNCHING else []
        if refused:  # e.g. a folder replaced by a link out of the data roots while it waited
            self._fail(job, f"{REFUSED_AT_TURN}: {summary(refused)}", Failure.REFUSED)
            return None
        if job_plan is not None:
            return job_plan
        if not validation.ok:
            self._fail(job, "cannot go on after the service restarted: "
                       f"{summary(validation.problems)}", Failure.SYSTEM)
            return None
        # a job waiting for its turn (after a restart or a retry) is checked as it would be
        # now; a running one is not (its run is already under way)
        waiting = job.status == LAUNCHING
        job_plan, problems = plan(request, self.storage_config, self.roots(job.project),
                                  check_inputs=waiting, limits=self.check_limits)
        if errors(problems):
            self._fail(job, f"{REFUSED_AT_TURN}: {summary(problems)}" if waiting else
                       f"cannot go on after the service restarted: {summary(problems)}",
                       Failure.REFUSED if waiting else Failure.SYSTEM)
            return None
        return job_plan

    def _fail(self, job: Job, message: str, failure: Failure) -> None:
        try:
            self.store.fail(job.instance_id, message, failure)
        except IllegalTransition:
            pass  # cancelled or ended meanwhile
