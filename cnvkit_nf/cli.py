"""`cnvkit-nf`: validate a CNVkit request, turn it into Nextflow params, run it, follow it.

Exit codes: 0 success, 1 invalid request or inputs, 2 usage error, 3 the job failed,
4 Nextflow unavailable, 130 cancelled.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from cnvkit_nf import manifest, nextflow, storage
from cnvkit_nf.jobs import CANCELLED, FAILED, FINAL_STATES, FINISHED, Job, JobStore, now_ms
from cnvkit_nf.params import ParamsError, to_params
from cnvkit_nf.paths import Location, parse_location
from cnvkit_nf.problems import Problem, errors, format_problem
from cnvkit_nf.request import Validation, input_locations, validate_file
from cnvkit_nf.runner import JobRun, RunOptions, expected_tasks, preflight

EXIT_INVALID, EXIT_FAILED, EXIT_NO_NEXTFLOW, EXIT_CANCELLED = 1, 3, 4, 130
DEFAULT_STATE_DIR = Path.home() / ".cnvkit-nf"


def _report(problems: list[Problem], as_json: bool, valid: bool) -> None:
    if as_json:
        body = {"valid": valid, "problems": [p.__dict__ for p in problems]}
        click.echo(json.dumps(body, indent=2))
        return
    for problem in problems:
        click.echo(format_problem(problem), err=True)


def _load(request_file: str, as_json: bool = False) -> Validation:
    """Validate a request file; on errors print them all and exit 1."""
    validation = validate_file(request_file)
    if not validation.ok:
        _report(validation.problems, as_json, valid=False)
        if not as_json:
            click.echo(f"{request_file}: {len(errors(validation.problems))} problem(s)", err=True)
        sys.exit(EXIT_INVALID)
    return validation


def _params(validation: Validation, request_file: str, staged: dict | None = None) -> dict:
    try:
        return to_params(validation.request, validation.options, staged=staged)
    except ParamsError as err:
        _report(err.problems, False, valid=False)
        click.echo(f"{request_file}: cannot be run here", err=True)
        sys.exit(EXIT_INVALID)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="CNVKIT_NF_STATE_DIR", default=DEFAULT_STATE_DIR, show_default=True,
              help="Where job records and run folders are kept (env CNVKIT_NF_STATE_DIR).")
@click.option("--storage-config", type=click.Path(dir_okay=False, exists=True),
              envvar="CNVKIT_NF_STORAGE_CONFIG",
              help="JSON settings of the object store (endpoint_url, region, addressing_style, "
                   "profile, endpoints per scheme); default: the AWS chain alone.")
@click.pass_context
def main(ctx: click.Context, state_dir: Path, storage_config: str | None) -> None:
    """Run CNVkit jobs described by one JSON request on the Nextflow pipeline."""
    ctx.obj = Context(state_dir, storage_config)


@dataclass(frozen=True)
class Context:
    """Options of the command group, shared by every command."""

    state_dir: Path
    storage_config: str | None


@dataclass(frozen=True)
class ObjectStore:
    """The object-storage side of a request: a client (None when all paths are local), the
    remote inputs and the output folder."""

    s3: object | None
    settings: storage.Settings | None
    remote: list
    output_dir: Location


def _object_store(request: dict, config: str | None) -> tuple[ObjectStore, list[Problem]]:
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


@main.command()
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check-inputs", is_flag=True,
              help="Also check the input files' content, as `run` does before it starts.")
@click.pass_obj
def validate(ctx: Context, request_file: str, as_json: bool, check_inputs: bool) -> None:
    """Check a request statically (schema, option strings, cross-field rules).

    Without --check-inputs it reads no input file and touches no network, so it suits CI.
    Exit 0 when valid, 1 when not.
    """
    validation = _load(request_file, as_json)
    problems = validation.problems
    if check_inputs:
        problems = problems + _check_inputs(validation, request_file, ctx.storage_config)
    valid = not errors(problems)
    _report(problems, as_json, valid=valid)
    if not valid:
        sys.exit(EXIT_INVALID)
    if not as_json:
        click.echo(f"{request_file}: valid")


def _check_inputs(validation: Validation, request_file: str, config: str | None
                  ) -> list[Problem]:
    """Content checks of local inputs, or existence checks of object-storage ones."""
    store, problems = _object_store(validation.request, config)
    if store.s3 is None:
        return problems or preflight(_params(validation, request_file))
    return problems or storage.preflight(store.s3, store.remote, store.output_dir)


@main.command()
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.option("--storage", "storage_mode", type=click.Choice(["local", "native"]),
              default="local",
              show_default=True, help="native: keep object-storage URIs (as s3://) for "
              "Nextflow's nf-amazon plugin, for cloud executors.")
@click.option("--aws-config", type=click.Path(dir_okay=False),
              help="With --storage native: write the aws {} Nextflow config (endpoint, "
              "region, path-style access) here; pass it to `nextflow run -c`.")
@click.pass_obj
def params(ctx: Context, request_file: str, output: str | None, storage_mode: str,
           aws_config: str | None) -> None:
    """Write the Nextflow params of a request (for `nextflow run -params-file` or Tower)."""
    validation = _load(request_file)
    _report(validation.problems, False, valid=True)
    native = {}
    if storage_mode == "native":
        store, problems = _object_store(validation.request, ctx.storage_config)
        if errors(problems):
            _report(problems, False, valid=False)
            sys.exit(EXIT_INVALID)
        located = [loc for _, loc in store.remote] + [store.output_dir]
        native = {loc.raw: storage.native_uri(loc) for loc in located if loc.is_remote}
        if aws_config and store.settings:
            scheme = next(loc.scheme for loc in located if loc.is_remote)
            Path(aws_config).write_text(storage.nextflow_aws_config(store.settings, scheme))
    text = json.dumps(_params(validation, request_file, native), indent=2) + "\n"
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--profile", default="local", show_default=True,
              help="Nextflow profile(s), e.g. local, docker, slurm,singularity.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Nextflow work directory (default: in the job's run folder).")
@click.option("--resume", is_flag=True,
              help="Continue the latest run of the same request, reusing its finished tasks.")
@click.option("-c", "--config", "configs", multiple=True, type=click.Path(dir_okay=False,
              exists=True, path_type=Path), help="Extra Nextflow config file (repeatable).")
@click.pass_obj
def run(ctx: Context, request_file: str, profile: str, work_dir: Path | None, resume: bool,
        configs: tuple[Path, ...]) -> None:
    """Validate a request, check its inputs, run the pipeline and wait for it.

    Prints the instance_id first, then progress (tasks done/total), then where the results are.
    Object-storage inputs are staged into a local cache first; an object-storage output_dir
    receives the results after the run, its manifest last.
    """
    validation = _load(request_file)
    _report(validation.problems, False, valid=True)
    state_dir = ctx.state_dir
    objects, problems = _object_store(validation.request, ctx.storage_config)
    s3, remote, output_dir = objects.s3, objects.remote, objects.output_dir
    job_params = None
    if not errors(problems):
        if s3:
            problems += storage.preflight(s3, remote, output_dir)
        else:
            job_params = _params(validation, request_file)
            problems += preflight(job_params)
    if errors(problems):
        _report(problems, False, valid=False)
        click.echo(f"{request_file}: inputs are not usable, nothing was run", err=True)
        sys.exit(EXIT_INVALID)
    _report(problems, False, valid=True)
    try:
        nextflow.ensure(log=lambda m: click.echo(m, err=True))
    except nextflow.NextflowError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_NO_NEXTFLOW)

    store = JobStore(state_dir / "jobs.sqlite")
    previous = store.latest_for_request(validation.request) if resume else None
    if previous:
        job = previous
    else:
        if resume:
            click.echo("no earlier run of this request: starting afresh", err=True)
        job = store.create(validation.request,
                           tasks_total=expected_tasks(job_params) if job_params else 0)
        job = store.update(job.instance_id, run_dir=str(state_dir / "runs" / job.instance_id))
    click.echo(f"instance_id: {job.instance_id}")
    if s3:
        job_params = _stage(s3, store, job, validation, request_file, remote, state_dir)

    def publish(folder: Path) -> None:
        started = time.monotonic()
        count = storage.publish(s3, folder, output_dir)
        click.echo(f"published {count} files to {output_dir.raw} in "
                   f"{time.monotonic() - started:.1f} s (manifest last)", err=True)

    job_run = JobRun(store, store.get(job.instance_id), job_params,
                     RunOptions(profile, work_dir, bool(previous), list(configs)),
                     publish if output_dir.is_remote else None)
    job_run.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: job_run.cancel())
    final = _follow(job_run)
    _summarise(final, validation.request["output_dir"])
    if final.status != FINISHED:
        sys.exit(EXIT_CANCELLED if final.status == CANCELLED else EXIT_FAILED)


def _stage(s3, store: JobStore, job: Job, validation: Validation, request_file: str,
           remote: list, state_dir: Path) -> dict:
    """Download a job's object-storage inputs and check their content; the job's params."""
    run_dir = Path(job.run_dir)
    started = time.monotonic()
    try:
        with _counter("staging inputs", "objects") as progress:
            staged, fetched = storage.stage_in(s3, remote, state_dir / "cache",
                                               run_dir / "inputs", progress=progress)
    except storage.StorageError as err:
        store.update(job.instance_id, status=FAILED, message=str(err), end_time=now_ms())
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"staged {len(staged)} inputs in {time.monotonic() - started:.1f} s "
               f"({fetched} objects downloaded, the rest from the cache)", err=True)
    output_dir = parse_location(validation.request["output_dir"])
    if output_dir.is_remote:
        staged[output_dir.raw] = run_dir / "results"
        try:
            storage.withdraw_manifest(s3, output_dir)
        except storage.StorageError as err:
            store.update(job.instance_id, status=FAILED, message=str(err), end_time=now_ms())
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_FAILED)
    job_params = _params(validation, request_file, staged)
    problems = preflight(job_params)
    if errors(problems):
        _report(problems, False, valid=False)
        store.update(job.instance_id, status=FAILED, end_time=now_ms(),
                     message="; ".join(format_problem(p) for p in errors(problems)))
        sys.exit(EXIT_INVALID)
    store.update(job.instance_id, tasks_total=expected_tasks(job_params))
    return job_params


@contextmanager
def _counter(label: str, unit: str):
    """A `progress(done, total)` callback: a bar on a terminal, plain lines otherwise."""
    if not sys.stderr.isatty():
        yield lambda done, total: click.echo(f"{label}: {done}/{total} {unit}", err=True)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    with Progress(f"{label}", BarColumn(), MofNCompleteColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _follow(job_run: JobRun) -> Job:
    """Wait for a run, showing progress: a bar on a terminal, plain lines otherwise."""
    if not sys.stderr.isatty():
        last = [""]

        def plain(job: Job) -> None:
            if job.progress != last[0]:
                last[0] = job.progress
                click.echo(f"progress: {job.progress} tasks", err=True)

        return job_run.wait(plain)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("cnvkit-nf", total=job_run.job.tasks_total)

        def update(job: Job) -> None:
            bar.update(task, completed=job.tasks_done, total=job.tasks_total,
                       description=job.status.lower())

        return job_run.wait(update)


def _summarise(job: Job, output_dir: str) -> None:
    click.echo(f"status: {job.status}")
    click.echo(f"progress: {job.progress}")
    if job.status == FINISHED:
        click.echo(f"results: {output_dir}")
        click.echo(f"manifest: {output_dir.rstrip('/')}/{manifest.NAME}")
    elif job.message:
        click.echo(f"message: {job.message}")
        click.echo(f"log: {Path(job.run_dir) / 'nextflow.out'}")


@main.command()
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(ctx: Context, instance_id: str, as_json: bool) -> None:
    """Show a job's state (LAUNCHING, RUNNING, FINISHED, FAILED, CANCELLED, CANCELING)."""
    state_dir = ctx.state_dir
    store = JobStore(state_dir / "jobs.sqlite")
    job = store.get(instance_id)
    if job is None:
        raise click.ClickException(f"no job {instance_id} in {state_dir}")
    if job.status not in FINAL_STATES and job.pid and not _alive(job.pid):
        job = store.update(job.instance_id, status="FAILED",
                           message="the run stopped without reporting an end (launcher killed?)")
    body = {"instance_id": job.instance_id, "status": job.status, "progress": job.progress,
            "start_time": job.start_time, "duration": job.duration, "message": job.message}
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        for key, value in body.items():
            click.echo(f"{key}: {'' if value is None else value}")


@main.command(name="list")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_jobs(ctx: Context, limit: int, offset: int, as_json: bool) -> None:
    """List the jobs of this state dir, newest first."""
    count, jobs = JobStore(ctx.state_dir / "jobs.sqlite").list(limit=limit, offset=offset)
    rows = [{"instance_id": j.instance_id, "status": j.status, "progress": j.progress,
             "start_time": j.start_time, "duration": j.duration,
             "output_dir": j.request.get("output_dir")} for j in jobs]
    if as_json:
        click.echo(json.dumps({"count": count, "instances": rows}, indent=2))
        return
    for row in rows:
        click.echo(f"{row['instance_id']}  {row['status']:<9}  {row['progress']:>7}  "
                   f"{row['duration']:>6}s  {row['output_dir']}")
    click.echo(f"{len(rows)} of {count} job(s)", err=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def verify(output_dir: Path) -> None:
    """Check a result folder against its manifest: exit 0 when complete and intact."""
    problems = manifest.verify(output_dir)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(EXIT_INVALID)
    click.echo(f"{output_dir}: complete")


if __name__ == "__main__":
    main()
