"""A job's path from a valid request to its end, shared by `cnvkit-nf run` and the job service.

`plan` checks a request's inputs where they are (local files opened inside the allowed roots
and their content checked, or object-storage existence checks) before a job is created;
`Execution` then stages object-storage inputs, opens the local ones again (the job service
hands Nextflow private links or copies of them), runs Nextflow into the job's own results
folder, and publishes that folder to `output_dir` (local or object storage) once the run
succeeded, manifest last — or attaches to a run that a killed service left. A job that would
build a reference the project's reference cache holds reuses it (`reference_cache`); one that
builds it keeps it there.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cnvkit_nf import local_files, publish_local, storage
from cnvkit_nf.confined import Roots, everywhere
from cnvkit_nf.input_store import InputStore, StoreError
from cnvkit_nf.jobs import CANCELING, FINISHED, Job, JobStore
from cnvkit_nf.params import to_params
from cnvkit_nf.paths import Location, parse_location
from cnvkit_nf.problems import Problem, errors, summary
from cnvkit_nf.reference_cache import Lease, ReferenceCache, key_of
from cnvkit_nf.request import Validation, input_locations
from cnvkit_nf.runner import JobRun, RunOptions

Log = Callable[[str], None]
REUSED = ("reference reused: built by an earlier job of this project from the same controls, "
          "FASTA, BED, annotation, CNVkit version and options")
WAITING = "waiting for the reference another job of this project builds from the same inputs"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ObjectStore:
    """The object-storage side of a request: a client (None when all paths are local), the
    remote inputs and the output folder."""

    s3: object | None
    settings: storage.Settings | None
    remote: list[tuple[str, Location]]
    output_dir: Location


def object_store(request: dict, config: str | None) -> tuple[ObjectStore, list[Problem]]:
    """The object store a valid request uses (with the settings in `config`), and problems."""
    remote = [(f, loc) for f, loc in input_locations(request) if loc.is_remote]
    output_dir = parse_location(request["output_dir"])
    used = [loc for _, loc in remote] + ([output_dir] if output_dir.is_remote else [])
    if not used:
        return ObjectStore(None, None, [], output_dir), []
    try:
        settings = storage.load_settings(config)
    except storage.StorageError as err:
        return ObjectStore(None, None, remote, output_dir), [Problem("", str(err))]
    s3 = storage.client(settings, used[0].scheme)
    return ObjectStore(s3, settings, remote, output_dir), storage.endpoint_problems(settings, used)


@dataclass(frozen=True)
class Plan:
    """A valid request whose inputs were checked, and its object store."""

    validation: Validation
    objects: ObjectStore


def plan(validation: Validation, storage_config: str | None, roots: Roots,
         check_inputs: bool = True) -> tuple[Plan, list[Problem]]:
    """Check the inputs of a valid request where they are (unless `check_inputs` is False:
    a run already under way): local files opened inside `roots`, then their content; objects
    with the store's credentials. Nothing is written."""
    request = validation.request
    objects, problems = object_store(request, storage_config)
    if errors(problems) or not check_inputs:
        return Plan(validation, objects), problems
    if objects.s3:
        problems += local_files.path_problems(request, roots)
        problems += storage.preflight(objects.s3, objects.remote, objects.output_dir)
    else:
        problems += local_files.check(request, validation.options, roots)
    return Plan(validation, objects), problems


class Execution:
    """Brings one job to its end: stage object-storage inputs, run Nextflow (or follow the
    run a previous process started), publish the results. Cancellable from another thread."""

    def __init__(self, store: JobStore, job: Job, job_plan: Plan, state_dir: Path,
                 options: RunOptions, log: Log = lambda message: None,
                 max_attempts: int | None = None, roots: Roots | None = None,
                 inputs: InputStore | None = None, references: ReferenceCache | None = None):
        self.store, self.job, self.plan = store, job, job_plan
        self.max_attempts = max_attempts  # Nextflow runs allowed, None: no limit
        self.state_dir, self.options, self.log = state_dir, options, log
        self.roots = roots or everywhere()  # where local inputs and output_dir may lie
        self.inputs = inputs  # the store of private inputs, None: Nextflow reads the paths
        self.references = references  # references kept between jobs, None: always build
        self.run: JobRun | None = None
        self._lock = threading.Lock()
        self._cancelled = job.status == CANCELING

    def cancel(self) -> bool:
        """Stop the job: before Nextflow starts it never will; once running, it is stopped.
        False when the job had already ended."""
        with self._lock:
            if self.run is not None:
                accepted = self.run.cancel()
                self._cancelled = self._cancelled or accepted
                return accepted
            changed = None if self._cancelled else self.store.request_cancel(
                self.job.instance_id)
            if changed is not None:
                self._cancelled, self.job = True, changed
            return changed is not None

    def execute(self, on_progress: Callable[[Job], None] = lambda job: None,
                staging: Progress | None = None) -> Job:
        """Run the job to its end and return its final record."""
        params = self._recorded_params()
        if params is not None and not self.job.final:
            attached = JobRun(self.store, self.job, params, self.options, self._publisher())
            if attached.attach() or attached.exit_status() is not None:
                with self._lock:
                    self.run = attached
                self.log(f"{self.job.instance_id}: following the run started earlier")
                final = attached.wait(on_progress) if attached.pid else attached.finish()
                return self._keep_reference(final, params)
        if self.job.final:  # an ended job run again (`run --resume`): its tasks are reused
            self.job = self.store.retry(self.job.instance_id)
        if self._cancelled:
            return self._cancelled_before_start()
        if self.max_attempts is not None and self.job.attempts >= self.max_attempts:
            self._failed(f"its run was interrupted {self.job.attempts} times; not resumed again")
            return self.job
        staged = self._stage(staging) if self.plan.objects.s3 else {}
        if staged is not None:
            staged = self._claim_paths(staged)
        params = self._params(staged) if staged is not None else None
        if params is None:
            return self.job
        lease = self._reference_lease(params)
        try:
            with self._lock:
                if self._cancelled:
                    return self._cancelled_before_start()
                self.run = JobRun(self.store, self.job, params, self.options, self._publisher())
                self.run.start()
                if lease is not None and lease.entry is not None:
                    self.job = self.store.update(self.job.instance_id, message=REUSED)
            return self._keep_reference(self.run.wait(on_progress), params)
        finally:
            if lease is not None:
                lease.release()

    def _reference_lease(self, params: dict) -> Lease | None:
        """Hold the project's cache entry of the reference these params would build: when it is
        there, the params are changed to reuse it; else this job builds it (and others of the
        project wait for it). None without a cache, or when the params build no reference."""
        key = key_of(params, self._staging_cache) \
            if self.references is not None else None
        if key is None:
            return None
        earlier = ((self._recorded_params() or {}).get("job") or {}).get("reference") or {}
        if earlier == {"key": key, "reused": False}:  # resumed: goes on building as it began
            params["job"]["reference"] = earlier
            return None

        def waiting() -> None:
            self.log(f"{self.job.instance_id}: {WAITING}")
            self.store.update(self.job.instance_id, message=WAITING)

        lease = self.references.acquire(self.job.project, key,
                                        cancelled=lambda: self._cancelled, waiting=waiting)
        if lease is None:  # cancelled while waiting
            return None
        if lease.entry is not None:
            params.update(control_inputs=[], reference_cnn=str(lease.entry.reference))
            self.log(f"{self.job.instance_id}: {REUSED}")
        params["job"]["reference"] = {"key": key, "reused": lease.entry is not None}
        return lease

    def _keep_reference(self, final: Job, params: dict) -> Job:
        """Keep the reference a finished job built in the cache, unless its inputs changed
        while it ran (the key no longer describes what it read)."""
        built = (params.get("job") or {}).get("reference") or {}
        if self.references is None or final.status != FINISHED or built.get("reused", True):
            return final
        if key_of(params, self._staging_cache) != built["key"]:
            self.log(f"{final.instance_id}: an input changed during the run: its reference is "
                     "not kept for reuse")
            return final
        try:
            self.references.keep(final.project, built["key"],
                                 Path(params["output_dir"]) / "reference")
        except OSError as err:
            self.log(f"{final.instance_id}: its reference could not be kept for reuse: {err}")
        return final

    @property
    def _staging_cache(self) -> Path:
        """Where object-storage inputs are downloaded to (keyed by their identity)."""
        return self.state_dir / "cache"

    def _recorded_params(self) -> dict | None:
        """The params of the run a previous process started for this job, if any."""
        path = Path(self.job.run_dir) / "params.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _cancelled_before_start(self) -> Job:
        self.job = self.store.cancelled(self.job.instance_id)
        return self.job

    def _failed(self, message: str) -> None:
        self.job = self.store.fail(self.job.instance_id, message)

    def _local_output(self) -> str:
        return self.roots.absolute(self.plan.objects.output_dir.key)

    def _publisher(self) -> Callable[[Path], None]:
        """Publishes the finished results folder to `output_dir`, manifest last."""
        objects = self.plan.objects

        def publish(folder: Path) -> None:
            started = time.monotonic()
            if objects.output_dir.is_remote:
                count = storage.publish(objects.s3, folder, objects.output_dir)
            else:
                count = publish_local.publish(folder, self._local_output(), self.roots)
            self.log(f"published {count} files to {objects.output_dir.raw} in "
                     f"{time.monotonic() - started:.1f} s (manifest last)")

        return publish

    def _stage(self, progress: Progress | None) -> dict[str, Path] | None:
        """Download the object-storage inputs: their local copies by URI, or None when the
        job failed (its record says why)."""
        objects, run_dir = self.plan.objects, Path(self.job.run_dir)
        started = time.monotonic()
        try:
            staged, fetched = storage.stage_in(objects.s3, objects.remote,
                                               self._staging_cache, run_dir / "inputs",
                                               progress=progress)
            self.log(f"staged {len(staged)} inputs in {time.monotonic() - started:.1f} s "
                     f"({fetched} objects downloaded, the rest from the cache)")
            if objects.output_dir.is_remote:
                storage.withdraw_manifest(objects.s3, objects.output_dir)
        except storage.StorageError as err:
            self._failed(str(err))
            return None
        return staged

    def _claim_paths(self, staged: dict[str, Path]) -> dict[str, Path] | None:
        """Check the local paths again now that the job's turn has come, hand the inputs to
        the private store (when there is one), withdraw the manifest of an earlier result in
        a local output_dir: the paths Nextflow is to use, or None when the job failed."""
        request = self.plan.validation.request
        problems: list[Problem] = []
        private: dict[str, Path] = {}
        if self.inputs is not None:
            started = time.monotonic()
            opened, problems = local_files.open_inputs(request, self.roots)
            try:
                if not problems:
                    for item in opened:
                        private[item.path] = self.inputs.admit(item)
            except (StoreError, OSError) as err:
                self._failed(f"the inputs could not be staged: {err}")
                return None
            finally:
                for item in opened:
                    item.close()
            self.log(f"{self.job.instance_id}: {len(private)} local inputs in the private "
                     f"store in {time.monotonic() - started:.1f} s")
        output = self.plan.objects.output_dir
        if not output.is_remote:
            reason = local_files.output_problem(output.key, self.roots)
            problems += [Problem("output_dir", reason)] if reason else []
        if problems:
            self._failed(f"refused when its turn came: {summary(problems)}")
            return None
        if not output.is_remote:
            try:
                publish_local.withdraw_manifest(self._local_output(), self.roots)
            except publish_local.PublishError as err:
                self._failed(f"refused when its turn came: {err}")
                return None
        return {**staged, **private}

    def _params(self, staged: dict[str, Path]) -> dict | None:
        """The job's Nextflow params, its results collected in its own run folder; None when
        staged object-storage inputs fail their content checks (the job failed)."""
        validation = self.plan.validation
        results = Path(self.job.run_dir) / "results"
        params = to_params(validation.request, validation.options,
                           staged={**staged, self.plan.objects.output_dir.raw: results})
        if self.plan.objects.s3:  # downloaded copies: checked as a local run's inputs are
            problems = errors(local_files.content_problems(params))
            if problems:
                self._failed(summary(problems))
                return None
        job = {"instance_id": self.job.instance_id, "request": validation.request,
               "submitted": datetime.fromtimestamp(self.job.created / 1000, UTC).isoformat()}
        # the inputs and options were checked: the pipeline need not check them again, and
        # follows the check's decisions on the indexes of the very files it is given
        return {**params, "inputs_checked": True, "job": job,
                "indexes": local_files.index_decisions(params)}


def new_job(store: JobStore, job_plan: Plan, state_dir: Path, **identity) -> Job:
    """Record a LAUNCHING job for a checked plan; its run folder is in the state dir."""
    return store.create(job_plan.validation.request, runs_in=state_dir / "runs", **identity)
