"""A job's path from a valid request to its end, shared by `cnvkit-nf run` and the job service.

It reads in one direction; each step has one home and hands its result to the next:

    plan          the inputs checked where they are (local files opened inside the allowed
                  roots and their content checked, or object-storage existence checks); nothing
                  is written, no job exists yet
    new_job       the job's record, LAUNCHING (`jobs.JobStore` owns its states from here);
                  or an ended job retried (`JobStore.retry`: its finished tasks are reused)
    Execution.execute:
      follow      a run an earlier process started (a killed service) is followed to its end;
                  else:
      begin       a cancelled job, or one interrupted too often, goes no further
      stage       object-storage inputs downloaded, local ones opened again (the job service
                  hands Nextflow private links or copies of them), an earlier manifest withdrawn
      params      the Nextflow params, results collected in the job's own run folder
      reference   the project's kept reference reused, or its building claimed
                  (`reference.cache`); then, for a job that builds its regions, its kept
                  accessible regions reused, or their computing claimed (`reference.access`)
      run         Nextflow started and followed (`runner`, which only runs it); the steps
                  from stage to here hold `state.locks.staging`
      conclude    the bin-size warnings of its regions (reference/bin_sizes.json) added to
                  its warnings; the results published to `output_dir` (local or object
                  storage), manifest last; a reference (and accessible regions) the job
                  built kept for reuse; the end recorded (a job seen FINISHED has kept
                  them); the run's work dir deleted (nothing resumes a finished run). When
                  the service stops before the end is recorded, the
                  publication rolls back and the job stays RUNNING: the next start publishes
                  it again. A failed or cancelled job keeps its work dir (a retry resumes it)

One copy of the results: Nextflow hard links them from the work dir into the run folder's
results/ when both are on one device (params `publish_dir_mode`), and a local `output_dir`
gets links of those (`publish_local`), so once the work dir is gone one copy is left.

A job that cannot end well raises `JobFailed` with the kind of its failure (`jobs.Failure`).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cnvkit_nf.contract.model import Request
from cnvkit_nf.contract.params import reusing, to_params
from cnvkit_nf.contract.paths import Location
from cnvkit_nf.contract.problems import Problem, errors, summary
from cnvkit_nf.launch import local_files
from cnvkit_nf.launch.input_store import InputStore, StoreError
from cnvkit_nf.launch.local_files import DEFAULT_CHECK, CheckLimits
from cnvkit_nf.launch.runner import Ended, JobRun, RunOptions, WorkDir, work_dir
from cnvkit_nf.reference import access
from cnvkit_nf.reference.access import AccessCache
from cnvkit_nf.reference.cache import Lease, ReferenceCache, key_of
from cnvkit_nf.state import locks
from cnvkit_nf.state.jobs import CANCELING, LAUNCHING, Failure, Job, JobStore, Occupied
from cnvkit_nf.state.layout import Results, RunFolder, StateDir
from cnvkit_nf.storage import manifest, publish_local
from cnvkit_nf.storage import objects as storage
from cnvkit_nf.storage.confined import Roots, everywhere

Log = Callable[[str], None]
REUSED = ("reference reused: built by an earlier job of this project from the same controls, "
          "FASTA, BED, annotation, CNVkit version and options")
WAITING = "waiting for the reference another job of this project builds from the same inputs"
REFUSED_AT_TURN = "refused when its turn came"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ObjectStore:
    """The object-storage side of a request: a client (None when all paths are local) and the
    remote inputs."""

    s3: object | None
    settings: storage.Settings | None
    remote: list[tuple[str, Location]]


def object_store(request: Request, config: str | None) -> tuple[ObjectStore, list[Problem]]:
    """The object store a valid request uses (with the settings in `config`), and problems."""
    remote = [(f, loc) for f, loc in request.inputs() if loc.is_remote]
    output_dir = request.output_dir
    used = [loc for _, loc in remote] + ([output_dir] if output_dir.is_remote else [])
    if not used:
        return ObjectStore(None, None, []), []
    try:
        settings = storage.load_settings(config)
    except storage.StorageError as err:
        return ObjectStore(None, None, remote), [Problem("", str(err))]
    s3 = storage.client(settings, used[0].scheme)
    return ObjectStore(s3, settings, remote), storage.endpoint_problems(settings, used)


@dataclass(frozen=True)
class Plan:
    """A valid request whose inputs were checked, its object store, and the folder it
    publishes into as jobs compare them (`jobs.Occupied`): None when the plan has errors or
    was not checked, as no job is made from it then."""

    request: Request
    objects: ObjectStore
    destination: str | None
    limits: CheckLimits = DEFAULT_CHECK  # what each run of the input check may cost


def destination(output_dir: Location, roots: Roots) -> tuple[str | None, list[Problem]]:
    """The folder of `output_dir` as jobs compare them, ending in "/" (None when refused), and
    the problems: a bucket URI, or the place the walk inside the writable roots reaches
    (`local_files.output_folder`), which is in the caller's own roots whatever its links.
    A path, not the folder's (device, inode): publishing walks the path again, and folders
    still missing get made, so the place the path leads to is what two jobs must not share."""
    if output_dir.is_remote:
        return f"{output_dir.family}://{output_dir.bucket}/{output_dir.key.strip('/')}/", []
    place, reason = local_files.output_folder(output_dir.key, roots)
    return place, [Problem("output_dir", reason)] if reason else []


def plan(request: Request, storage_config: str | None, roots: Roots,
         check_inputs: bool = True, limits: CheckLimits = DEFAULT_CHECK
         ) -> tuple[Plan, list[Problem]]:
    """Check the inputs of a valid request where they are (unless `check_inputs` is False:
    a run already under way): local files opened inside `roots`, then their content (each
    check within `limits`); objects with the store's credentials. Then claim the output
    folder (`destination`): a folder swapped for a link since it was checked is refused
    there. Nothing is written."""
    objects, problems = object_store(request, storage_config)
    unclaimed = Plan(request, objects, None, limits)
    if errors(problems) or not check_inputs:
        return unclaimed, problems
    if objects.s3:
        problems += local_files.path_problems(request, roots)
        problems += storage.preflight(objects.s3, objects.remote, request.output_dir)
    else:
        problems += local_files.check(request, roots, limits)
    if errors(problems):
        return unclaimed, problems
    claimed, refused = destination(request.output_dir, roots)
    return Plan(request, objects, claimed, limits), problems + refused


class JobFailed(Exception):
    """A step of a job's path ended the job: the message says why, `failure` of what kind."""

    def __init__(self, message: str, failure: Failure):
        super().__init__(message)
        self.failure = failure


class JobCancelled(Exception):
    """The job was cancelled before its run started."""


class JobInterrupted(Exception):
    """The service stopped while the job's results were being published: the publication was
    rolled back and the job stays RUNNING, to be published at the next start."""


class Execution:
    """Brings one job to its end, one step after another (`execute`): each step returns its
    result to `execute` or raises `JobFailed`/`JobCancelled`; only `execute` records the end.
    Cancellable from another thread."""

    def __init__(self, store: JobStore, job: Job, job_plan: Plan, state_dir: Path,
                 options: RunOptions, log: Log = lambda message: None,
                 max_attempts: int | None = None, roots: Roots | None = None,
                 inputs: InputStore | None = None, references: ReferenceCache | None = None,
                 stopping: threading.Event | None = None, accesses: AccessCache | None = None):
        self.store, self.job, self.plan = store, job, job_plan
        self.max_attempts = max_attempts  # Nextflow runs allowed, None: no limit
        self.state_dir, self.options, self.log = state_dir, options, log
        self.roots = roots or everywhere()  # where local inputs and output_dir may lie
        self.inputs = inputs  # the store of private inputs, None: Nextflow reads the paths
        self.references = references  # references kept between jobs, None: always build
        # accessible regions kept between jobs: beside the references (and bound as they are)
        self.accesses = accesses if accesses is not None else AccessCache.of(
            StateDir(state_dir), references.max_bytes) if references is not None else None
        self.stopping = stopping  # set when the service stops: a publication rolls back
        self._concluding = False  # publishing the results and recording the end
        self.run: JobRun | None = None
        self._lock = threading.Lock()
        self._cancelled = threading.Event()  # the one flag of the job's cancel (its run's too)
        if job.status == CANCELING:
            self._cancelled.set()

    @property
    def concluding(self) -> bool:
        """Whether the job is publishing its results and recording its end: a stop of the
        service waits until it is not."""
        with self._lock:
            return self._concluding

    def cancel(self) -> bool:
        """Stop the job: before Nextflow starts it never will; once running, it is stopped.
        False when the job had already ended."""
        with self._lock:
            changed = None if self._cancelled.is_set() else self.store.request_cancel(
                self.job.instance_id)
            if changed is None:
                return False
            self._cancelled.set()
            self.job = changed
            if self.run is not None:
                self.run.stop()
            return True

    def execute(self, on_progress: Callable[[Job], None] = lambda job: None,
                staging: Progress | None = None) -> Job:
        """Run the job to its end and return its final record: follow the run an earlier
        process started, or begin (again): stage the inputs, make the params, take the
        reference, run Nextflow; then publish the results and record the end."""
        try:
            followed = self._follow(on_progress)
            if followed is not None:
                return self._conclude(*followed)
            self._begin()
            leases: list[Lease | None] = []
            try:
                # retention leaves staged inputs alone until the run's params.json names them
                with locks.staging(self.state_dir):
                    params = self._params(self._stage(staging))
                    leases.append(self._reference_lease(params))
                    leases.append(self._access_lease(params))
                    self._start(params)
                return self._conclude(self.run.wait(on_progress), params)
            finally:
                for lease in filter(None, leases):
                    lease.release()
        except JobFailed as failed:
            self.job = self.store.fail(self.job.instance_id, str(failed), failed.failure)
            self._kept_work()
        except JobCancelled:
            self.job = self.store.cancelled(self.job.instance_id)
            self._kept_work()
        except JobInterrupted:
            self.log(f"{self.job.instance_id}: the service stopped while its results were "
                     "published; rolled back, they are published at the next start")
        return self.job

    # --- the steps, in the order `execute` takes them ---------------------------------------

    def _follow(self, on_progress: Callable[[Job], None]) -> tuple[Ended, dict] | None:
        """How the run an earlier process started for this job ended (followed to its end
        when it still runs), with its params; None when there is no such run."""
        params = self._recorded_params()
        if params is None or self.job.final:
            return None
        run = JobRun(self.store, self.job, params, self.options, self._cancelled)
        # a retried (LAUNCHING) job's exit status is its earlier run's, which it does not follow
        if not run.attach() and (run.exit_status() is None or self.job.status == LAUNCHING):
            return None
        with self._lock:
            self.run = run
        self.log(f"{self.job.instance_id}: following the run started earlier")
        return run.wait(on_progress), params  # its progress as its own trace records it

    def _begin(self) -> None:
        """Whether the job may (re)start: a cancelled one, or one interrupted too often, may
        not."""
        if self._cancelled.is_set():
            raise JobCancelled
        if self.max_attempts is not None and self.job.attempts >= self.max_attempts:
            raise JobFailed(f"its run was interrupted {self.job.attempts} times; not resumed "
                            "again", Failure.SYSTEM)

    def _stage(self, progress: Progress | None) -> dict[str, Path]:
        """The local paths Nextflow is to read, by the paths of the request: object-storage
        inputs downloaded, local inputs checked again now that the job's turn has come (and
        handed to the private store when there is one); the manifest of an earlier result in
        output_dir withdrawn."""
        output = self.plan.request.output_dir
        staged = self._download(progress) if self.plan.objects.s3 else {}
        opened, problems = local_files.open_inputs(self.plan.request, self.roots) \
            if self.inputs is not None else ([], [])
        try:
            private = self._admit(opened) if not problems else {}
        finally:
            for item in opened:
                item.close()
        if not output.is_remote:
            reason = local_files.output_problem(output.key, self.roots)
            problems += [Problem("output_dir", reason)] if reason else []
        if problems:
            raise JobFailed(f"{REFUSED_AT_TURN}: {summary(problems)}", Failure.REFUSED)
        try:
            if output.is_remote:
                storage.withdraw_manifest(self.plan.objects.s3, output)
            else:
                publish_local.withdraw_manifest(self._local_output(), self.roots)
        except publish_local.PublishError as err:
            raise JobFailed(f"{REFUSED_AT_TURN}: {err}", Failure.REFUSED) from None
        except storage.StorageError as err:
            raise JobFailed(f"the earlier manifest in output_dir could not be withdrawn: {err}",
                            Failure.SYSTEM) from None
        return {**staged, **private}

    def _download(self, progress: Progress | None) -> dict[str, Path]:
        """The object-storage inputs in the staging cache, by URI."""
        started = time.monotonic()
        try:
            staged, fetched = storage.stage_in(self.plan.objects.s3, self.plan.objects.remote,
                                               self._staging_cache,
                                               self._folder.inputs,
                                               progress=progress)
        except storage.StorageError as err:
            raise JobFailed(str(err), Failure.SYSTEM) from None
        self.log(f"staged {len(staged)} inputs in {time.monotonic() - started:.1f} s "
                 f"({fetched} objects downloaded, the rest from the cache)")
        return staged

    def _admit(self, opened: list[local_files.Input]) -> dict[str, Path]:
        """The opened local inputs in the private store, by path."""
        started = time.monotonic()
        try:
            private = {item.path: self.inputs.admit(item) for item in opened}
        except (StoreError, OSError) as err:
            raise JobFailed(f"the inputs could not be staged: {err}", Failure.SYSTEM) from None
        self.log(f"{self.job.instance_id}: {len(private)} local inputs in the private store "
                 f"in {time.monotonic() - started:.1f} s")
        return private

    def _params(self, staged: dict[str, Path]) -> dict:
        """The job's Nextflow params, its results collected in its own run folder; staged
        object-storage inputs are checked here as a local run's inputs were in `plan`."""
        results = self._folder.results.path
        params = to_params(self.plan.request,
                           staged={**staged, self.plan.request.output_dir.raw: results})
        if self.plan.objects.s3:
            problems = errors(local_files.content_problems(
                params, limits=self.plan.limits,
                fields=local_files.fields_of(self.plan.request, staged)))
            if problems:
                raise JobFailed(f"{REFUSED_AT_TURN}: {summary(problems)}", Failure.REFUSED)
        job = {"instance_id": self.job.instance_id, "request": self.plan.request.raw,
               "submitted": datetime.fromtimestamp(self.job.created / 1000, UTC).isoformat()}
        # the inputs and options were checked: the pipeline need not check them again, and
        # follows the check's decisions on the indexes of the very files it is given
        try:
            indexes = local_files.index_decisions(params, self.plan.limits)
        except subprocess.SubprocessError as err:
            raise JobFailed(f"the inputs' indexes could not be looked at: {err}",
                            Failure.SYSTEM) from None
        return {**params, "inputs_checked": True, "job": job, "indexes": indexes,
                "publish_dir_mode": "link" if _device(self._work.path) == _device(results)
                else "copy"}

    def _reference_lease(self, params: dict) -> Lease | None:
        """Hold the project's cache entry of the reference these params would build: when it is
        there (and intact), the params are changed to reuse it; else this job builds it (and
        others of the project wait for it), and the job's record and report warn when a damaged
        entry was removed first. None without a cache, or when the params build no reference."""
        key = key_of(params, self._staging_cache) \
            if self.references is not None else None
        if key is None:
            return None
        earlier = ((self._recorded_params() or {}).get("job") or {}).get("reference") or {}
        if (earlier.get("key"), earlier.get("reused")) == (key, False):  # resumed: goes on
            params["job"]["reference"] = earlier  # building as it began (and why, if said)
            return None

        def waiting() -> None:
            self.log(f"{self.job.instance_id}: {WAITING}")
            self.store.warn(self.job.instance_id, WAITING)

        lease = self.references.acquire(self.job.project, key,
                                        cancelled=self._cancelled.is_set, waiting=waiting)
        if lease is None:  # cancelled while waiting
            return None
        if lease.entry is not None:
            params.update(reusing(params, str(lease.entry.reference)))
            self.log(f"{self.job.instance_id}: {REUSED}")
        if lease.warning:
            self.log(f"{self.job.instance_id}: warning: {lease.warning}")
        params["job"]["reference"] = {"key": key, "reused": lease.entry is not None,
                                      **({"warning": lease.warning} if lease.warning else {})}
        return lease

    def _access_lease(self, params: dict) -> Lease | None:
        """Hold the project's cache entry of the accessible regions these params compute (a
        job that builds its regions, not amplicon, no access_bed given): when it is there
        (and intact), the params are changed to take it as their access_bed; else this job
        computes them and keeps them, unless another job of the project is computing them
        (this one does not wait for that job's run: it computes its own and keeps none).
        None without a cache, or when the params compute no access."""
        key = access.key_of(params, self._staging_cache) if self.accesses is not None else None
        if key is None:
            return None
        earlier = ((self._recorded_params() or {}).get("job") or {}).get("access") or {}
        if (earlier.get("key"), earlier.get("reused")) == (key, False):  # resumed: goes on
            params["job"]["access"] = earlier
            return None
        lease = self.accesses.acquire(self.job.project, key, wait=False)
        given = {"access_conf": params.get("access_conf", ""),
                 "access_exclude": params.get("access_exclude", [])}
        if lease.entry is not None:
            reused = access.reusing(params, str(lease.entry.file(access.FILES[0])))
            params.clear()  # its exclusion BEDs go: the same dict, as the run's params
            params.update(reused)
            self.log(f"{self.job.instance_id}: {access.REUSED}")
        if lease.warning:
            self.log(f"{self.job.instance_id}: warning: {lease.warning}")
        params["job"]["access"] = {"key": key, "reused": lease.entry is not None,
                                   "kept": lease.held, **given,
                                   **({"warning": lease.warning} if lease.warning else {})}
        return lease

    def _start(self, params: dict) -> None:
        """Start Nextflow, unless the job was cancelled meanwhile (`execute` follows it)."""
        with self._lock:
            if self._cancelled.is_set():
                raise JobCancelled
            self.run = JobRun(self.store, self.job, params, self.options, self._cancelled)
            self.run.start()  # clears the warnings: what the reference step says comes after
        said = notices(params["job"])
        if said:
            self.job = self.store.warn(self.job.instance_id, *said)

    def _conclude(self, ended: Ended, params: dict) -> Job:
        """Record how the run ended; a successful run's results are published first (manifest
        last), and the reference it built is kept for the project's next jobs."""
        if ended.cancelled:
            raise JobCancelled
        if ended.failure:
            raise JobFailed(ended.failure, ended.kind)
        results = Path(params["output_dir"])
        if not (results / manifest.NAME).is_file():  # the pipeline places it after every file
            raise JobFailed("the run ended without the manifest of its results", Failure.WORKFLOW)
        self._bin_size_warnings(results)  # before publishing: a stop waits on no more than that
        with self._lock:  # a stop sets `stopping`, then waits while `concluding`
            if self.stopping is not None and self.stopping.is_set():
                raise JobInterrupted
            self._concluding = True
        try:  # kept before the end is recorded: a job seen FINISHED has kept its reference
            self._publish(results)
            self._keep_reference(params)
            self._keep_access(params)
            self.job = self.store.finish(self.job.instance_id)
        finally:
            with self._lock:
                self._concluding = False
        self._drop_work()
        return self.job

    def _bin_size_warnings(self, results: Path) -> None:
        """Add the warnings of the bin sizes the run chose (`bin_size_warnings`) to the job's,
        after its notices (each once, if concluded again after a crash), and say them in the
        log (`cnvkit-nf run` prints it)."""
        warnings = bin_size_warnings(results)
        for warning in warnings:
            self.log(f"{self.job.instance_id}: warning: {warning}")
        if warnings:
            self.job = self.store.warn(self.job.instance_id, *warnings)

    def _publish(self, results: Path) -> None:
        """Publish the finished results folder to `output_dir`, manifest last (a local one by
        hard links where it can: `publish_local`); rolled back when the service stops
        meanwhile (JobInterrupted)."""
        objects, output_dir = self.plan.objects, self.plan.request.output_dir
        started = time.monotonic()
        stop = self.stopping or threading.Event()
        how = "manifest last"
        try:
            if output_dir.is_remote:
                count = storage.publish(objects.s3, results, output_dir, stop=stop)
            else:  # the work dir's links to the results go once they are published
                published = publish_local.publish(results, self._local_output(), self.roots,
                                                  stop=stop, disposable=self._work.files())
                count, how = published.files, f"{how}; {published}"
        except manifest.Interrupted:
            raise JobInterrupted from None
        except publish_local.PublishError as err:
            raise JobFailed(f"publishing the results failed: {err}",
                            Failure.REFUSED if err.refused else Failure.SYSTEM) from None
        except Exception as err:  # noqa: BLE001 - any other failure to publish fails the job
            raise JobFailed(f"publishing the results failed: {err}", Failure.SYSTEM) from None
        self.log(f"published {count} files to {output_dir.raw} in "
                 f"{time.monotonic() - started:.1f} s ({how})")

    def _drop_work(self) -> None:
        """Delete the finished run's work dir (of a `--nextflow-work-dir`, its task folders):
        its results are published and nothing resumes a finished run; unless the job was
        asked to keep it (`RunOptions.keep_work`): then say how much it keeps."""
        work = self._work
        if self.options.keep_work:
            self.log(f"{self.job.instance_id}: its work dir keeps {work.size()} bytes (kept as "
                     f"asked): {work.path}")
            return
        try:
            size = work.size()
            work.drop()
        except OSError as err:
            self.log(f"{self.job.instance_id}: its work dir {work.path} could not be deleted: "
                     f"{err}")
            return
        self.log(f"{self.job.instance_id}: work dir deleted ({size} bytes freed; the results "
                 f"keep the files they share with it): {work.path}")

    def _kept_work(self) -> None:
        """Say how much the work dir of a failed or cancelled job keeps for a retry."""
        size = self._work.size() if self.job.run_dir else 0
        if size:
            self.log(f"{self.job.instance_id}: its work dir keeps {size} bytes for a retry "
                     f"(which resumes it): {self._work.path}")

    def _keep_reference(self, params: dict) -> None:
        """Keep the reference a finished job built in the cache, unless its inputs changed
        while it ran (the key no longer describes what it read)."""
        built = (params.get("job") or {}).get("reference") or {}
        if self.references is None or built.get("reused", True):
            return
        if key_of(params, self._staging_cache) != built["key"]:
            self.log(f"{self.job.instance_id}: an input changed during the run: its reference "
                     "is not kept for reuse")
            return
        try:
            self.references.keep(self.job.project, built["key"],
                                 Results(Path(params["output_dir"])).reference)
        except OSError as err:
            self.log(f"{self.job.instance_id}: its reference could not be kept for reuse: "
                     f"{err}")

    def _keep_access(self, params: dict) -> None:
        """Keep the accessible regions a finished job computed (its results'
        reference/access.bed), unless another job held their key, or an input changed while it
        ran."""
        computed = (params.get("job") or {}).get("access") or {}
        if self.accesses is None or computed.get("reused", True) or not computed.get("kept"):
            return
        if access.key_of(params, self._staging_cache) != computed["key"]:
            self.log(f"{self.job.instance_id}: an input changed during the run: its accessible "
                     "regions are not kept for reuse")
            return
        folder = Results(Path(params["output_dir"])).reference
        if not (folder / access.FILES[0]).is_file():
            return
        try:
            self.accesses.keep(self.job.project, computed["key"], folder)
        except OSError as err:
            self.log(f"{self.job.instance_id}: its accessible regions could not be kept for "
                     f"reuse: {err}")

    # --- what the steps share ---------------------------------------------------------------

    @property
    def _folder(self) -> RunFolder:
        """The job's run folder (`state.layout`)."""
        return RunFolder(self.job.run_dir)

    @property
    def _work(self) -> WorkDir:
        """The run's work dir (`runner.WorkDir`)."""
        return work_dir(self.options, self._folder)

    @property
    def _staging_cache(self) -> Path:
        """Where object-storage inputs are downloaded to (keyed by their identity)."""
        return StateDir(self.state_dir).staging_cache

    def _recorded_params(self) -> dict | None:
        """The params of the run a previous process started for this job, if any."""
        path = self._folder.params
        return json.loads(path.read_text()) if path.exists() else None

    def _local_output(self) -> str:
        return self.roots.absolute(self.plan.request.output_dir.key)


def _device(path: Path) -> int:
    """The device of the folder `path` is or will be made in (its nearest existing one)."""
    for folder in [path, *path.parents]:
        try:
            return os.stat(folder).st_dev
        except OSError:
            continue
    return -1


def notices(job: dict) -> list[str]:
    """What a job's warnings say as its run starts (its params' `job`): the reference reused,
    or why a kept one was removed; the same of its accessible regions."""
    reference, regions = job.get("reference") or {}, job.get("access") or {}
    said = [REUSED if reference.get("reused") else reference.get("warning"),
            access.REUSED if regions.get("reused") else regions.get("warning")]
    return [notice for notice in said if notice]


def bin_size_warnings(results: Path) -> list[str]:
    """The warnings of the bin sizes a run's regions stage chose (`reference/bin_sizes.json`'s
    "warnings": a size that cannot fit, one autobin clamped); none when the file is absent (a
    reused reference, an older pipeline) or unreadable."""
    try:
        found = json.loads(Results(results).bin_sizes.read_text()).get("warnings") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(warning) for warning in found if isinstance(warning, str) and warning.strip()]


def new_job(store: JobStore, job_plan: Plan, state_dir: Path, **identity) -> Job:
    """Record a LAUNCHING job for a checked plan; its run folder is in the state dir. Raises
    Occupied while another job publishes into the same folder (see `occupied`)."""
    return store.create(job_plan.request.raw, runs_in=StateDir(state_dir).runs,
                        destination=job_plan.destination,
                        samplesheet=job_plan.request.sheet_text, **identity)


def occupied(err: Occupied) -> Problem:
    """The problem of a job refused because `err.job`, a job of its own project (the only
    ones it is compared with), publishes where it would."""
    other = err.job
    return Problem("output_dir", f"job {other.instance_id} ({other.status}) publishes into "
                                 f"{other.request['output_dir']} (the same folder, or one "
                                 "inside or around it) and has not ended; results of two jobs "
                                 "never mix: wait for it to end, or choose another output_dir")
