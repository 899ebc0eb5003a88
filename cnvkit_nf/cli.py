"""`cnvkit-nf`: validate a CNVkit request, turn it into Nextflow params, run it, follow it.

Exit codes: 0 success, 1 invalid request or inputs, 2 usage error, 3 the job failed,
4 Nextflow unavailable, 130 cancelled.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from cnvkit_nf.contract import option_cache
from cnvkit_nf.contract.option_cache import OptionCache
from cnvkit_nf.contract.params import ParamsError, to_params
from cnvkit_nf.contract.problems import Problem, errors, format_problem
from cnvkit_nf.contract.request import Validation, validate_file
from cnvkit_nf.contract.template import TemplateError, request_template
from cnvkit_nf.launch import nextflow, samplesheets
from cnvkit_nf.launch.runner import RunOptions, job_log, settle
from cnvkit_nf.launch.submission import Execution, new_job, object_store, occupied, plan
from cnvkit_nf.reference.cache import ReferenceCache, parse_size
from cnvkit_nf.service import config as settings
from cnvkit_nf.service import http_server, retention
from cnvkit_nf.service.app import App
from cnvkit_nf.service.client import RETRY_SECONDS, Client, ServiceError
from cnvkit_nf.service.job_api import Jobs
from cnvkit_nf.service.workers import WorkerPool
from cnvkit_nf.state.jobs import CANCELLED, FINISHED, Job, JobStore, Occupied
from cnvkit_nf.state.layout import (
    DEFAULT_STATE_DIR,
    NETWORK_FILE_SYSTEMS,
    LayoutError,
    RunFolder,
    StateDir,
    file_system,
    open_state,
)
from cnvkit_nf.storage import manifest
from cnvkit_nf.storage import objects as storage
from cnvkit_nf.storage.confined import everywhere

EXIT_INVALID, EXIT_FAILED, EXIT_NO_NEXTFLOW, EXIT_CANCELLED = 1, 3, 4, 130
# How long a stopping service waits for publications under way to complete or roll back.
PUBLICATION_GRACE_SECONDS = 60


def _report(problems: list[Problem], as_json: bool, valid: bool) -> None:
    if as_json:
        body = {"valid": valid, "problems": [p.__dict__ for p in problems]}
        click.echo(json.dumps(body, indent=2))
        return
    for problem in problems:
        click.echo(format_problem(problem), err=True)


def _load(request_file: str, as_json: bool = False) -> Validation:
    """Validate a request file (with its samplesheet's rows, when it names one: read here,
    from a local path or object storage); on errors print them all and exit 1."""
    cache = OptionCache(option_cache.default_folder())
    storage_config = click.get_current_context().find_object(Context).storage_config
    validation = samplesheets.with_rows(
        validate_file(request_file, cache),
        lambda sheet: validate_file(request_file, cache, sheet), everywhere(), storage_config)
    if not validation.ok:
        _report(validation.problems, as_json, valid=False)
        if not as_json:
            click.echo(f"{request_file}: {len(errors(validation.problems))} problem(s)", err=True)
        sys.exit(EXIT_INVALID)
    return validation


def _params(validation: Validation, request_file: str, staged: dict | None = None) -> dict:
    try:
        return to_params(validation.request, staged=staged)
    except ParamsError as err:
        _report(err.problems, False, valid=False)
        click.echo(f"{request_file}: cannot be run here", err=True)
        sys.exit(EXIT_INVALID)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="CNVKIT_NF_STATE_DIR", default=DEFAULT_STATE_DIR, show_default=True,
              help="Where job records, locks and run folders are kept: a local disk (env "
                   "CNVKIT_NF_STATE_DIR).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="CNVKIT_NF_WORK_DIR",
              help="Where what cluster nodes must see goes (runs' Nextflow work and results, "
                   "staged inputs, kept references): a shared file system. Recorded in the "
                   "state dir by the first `serve` or `run` given it, then used by every "
                   "command; default: the state dir (env CNVKIT_NF_WORK_DIR).")
@click.option("--storage-config", type=click.Path(dir_okay=False, exists=True),
              envvar="CNVKIT_NF_STORAGE_CONFIG",
              help="JSON settings of the object store (endpoint_url, region, addressing_style, "
                   "profile, endpoints per scheme); default: the AWS chain alone.")
@click.option("--reference-cache-size", "cache_size", envvar="CNVKIT_NF_REFERENCE_CACHE_SIZE",
              default="20G", show_default=True, callback=lambda _c, _p, value: _size(value),
              help="Bound of the references kept for reuse between jobs, e.g. 500M, 20G; 0 "
                   "turns reuse off (env CNVKIT_NF_REFERENCE_CACHE_SIZE).")
@click.pass_context
def main(ctx: click.Context, state_dir: Path, work_dir: Path | None,
         storage_config: str | None, cache_size: int) -> None:
    """Run CNVkit jobs described by one JSON request on the Nextflow pipeline.

    \b
    Example:
      cnvkit-nf init --bams bams/ --ref hg38.fa --bed exome.bed > request.json
      cnvkit-nf run request.json
    """
    ctx.obj = Context(state_dir, storage_config, cache_size, work_dir)


def _renamed(old: str, new: str, value, why: str = "its meaning differed between run and serve"):
    """An option's old spelling: still works, with a note to use the new one."""
    if value:
        click.echo(f"warning: `{old}` is deprecated ({why}); use {new}", err=True)
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size such as 500M or 20G") from None


@dataclass(frozen=True)
class Context:
    """Options of the command group, shared by every command."""

    state_dir: Path
    storage_config: str | None
    cache_bytes: int = 0
    work_dir: Path | None = None  # --work-dir, as given

    @property
    def state(self) -> StateDir:
        """Where the state dir keeps each thing (its work dir as it records it)."""
        return StateDir(self.state_dir)

    def checked(self, record: bool = False) -> StateDir:
        """The state dir with its work dir checked (`layout.open_state`: --work-dir recorded
        on first use when `record`); an error of the command otherwise."""
        try:
            return open_state(self.state_dir, self.work_dir, record)
        except LayoutError as err:
            raise click.ClickException(str(err)) from None

    @property
    def references(self) -> ReferenceCache | None:
        """The references kept between this state dir's jobs; None when the bound is 0."""
        return ReferenceCache.of(self.state, self.cache_bytes) if self.cache_bytes else None


_PATH = click.Path(dir_okay=False, exists=True, path_type=Path)


@main.command()
@click.option("--bams", required=True, type=click.Path(file_okay=False, exists=True,
                                                       path_type=Path),
              help="The folder of the BAMs (each indexed).")
@click.option("--ref", required=True, type=_PATH, help="The reference FASTA.")
@click.option("--bed", type=_PATH, help="The target BED (not needed for --method wgs).")
@click.option("--control", "controls", multiple=True, metavar="PATTERN",
              help="The normals: file names matching this shell pattern, e.g. '*normal*' "
                   "(repeatable). Without, every BAM is a tumour and the reference is flat.")
@click.option("--annotation", type=_PATH, help="Gene annotation (GFF3, refFlat) for gene names.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Where the results go.")
@click.option("--method", type=click.Choice(["hybrid", "amplicon", "wgs"]), default="hybrid",
              show_default=True, help="The assay.")
def init(bams: Path, ref: Path, bed: Path | None, controls: tuple[str, ...],
         annotation: Path | None, output_dir: Path, method: str) -> None:
    """Write a request for the BAMs of a folder to stdout: a template to edit, then validate
    and run.

    \b
    Example:
      cnvkit-nf init --bams bams/ --ref hg38.fa --bed exome.bed --control '*normal*' \\
          > request.json
      cnvkit-nf validate request.json && cnvkit-nf run request.json
    """
    try:
        request = request_template(bams, ref, bed, controls, annotation, output_dir, method)
    except TemplateError as err:
        raise click.UsageError(str(err)) from None
    click.echo(json.dumps(request, indent=2))
    if not request["control_inputs"]:
        click.echo("no controls (--control): the reference is flat; see the README on "
                   "references", err=True)


@main.command()
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check-inputs", is_flag=True,
              help="Also check the input files' content, as `run` does before it starts.")
@click.pass_obj
def validate(ctx: Context, request_file: str, as_json: bool, check_inputs: bool) -> None:
    """Check a request statically (schema, option strings, cross-field rules).

    Without --check-inputs it reads no input file and touches no network (but a samplesheet
    the request names, which holds its samples), so it suits CI.
    Exit 0 when valid, 1 when not.

    \b
    Example:
      cnvkit-nf validate request.json --check-inputs
    """
    validation = _load(request_file, as_json)
    problems = validation.problems
    if check_inputs:  # content of local inputs, or existence of object-storage ones
        problems = problems + plan(validation.request, ctx.storage_config, everywhere())[1]
    valid = not errors(problems)
    _report(problems, as_json, valid=valid)
    if not valid:
        sys.exit(EXIT_INVALID)
    if not as_json:
        click.echo(f"{request_file}: valid")


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
    """Write the Nextflow params of a request (for `nextflow run -params-file` or Tower).

    \b
    Example:
      cnvkit-nf params request.json -o params.json
      nextflow run . -params-file params.json -profile local
    """
    validation = _load(request_file)
    _report(validation.problems, False, valid=True)
    native = {}
    if storage_mode == "native":
        store, problems = object_store(validation.request, ctx.storage_config)
        if errors(problems):
            _report(problems, False, valid=False)
            sys.exit(EXIT_INVALID)
        located = [loc for _, loc in store.remote] + [validation.request.output_dir]
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
@click.option("--nextflow-work-dir", "work_dir", type=click.Path(file_okay=False,
              path_type=Path),
              help="Nextflow's work directory, which runs may share (default: in the job's "
                   "run folder, in the work dir).")
@click.option("--work-dir", "old_work_dir", hidden=True, type=click.Path(
              file_okay=False, path_type=Path),
              callback=lambda _c, _p, value: _renamed(
                  "run --work-dir", "--nextflow-work-dir", value,
                  "`cnvkit-nf --work-dir` is where the job system's shared files go"))
@click.option("--resume", is_flag=True,
              help="Continue the latest run of the same request, reusing its finished tasks.")
@click.option("--keep-work", is_flag=True,
              help="Keep the work dir of a finished job (its task folders: for inspection or "
                   "`nextflow -resume`); by default it is deleted once the results are "
                   "published.")
@click.option("-c", "--nextflow-config", "configs", multiple=True, type=click.Path(
              dir_okay=False, exists=True, path_type=Path),
              help="Extra Nextflow config file (repeatable).")
@click.option("--config", "old_configs", multiple=True, hidden=True, type=click.Path(
              dir_okay=False, exists=True, path_type=Path),
              callback=lambda _c, _p, value: _renamed("run --config", "-c/--nextflow-config",
                                                      value))
@click.option("--stub", is_flag=True,
              help="Run with -stub-run: checks the wiring and the request, computes nothing.")
@click.pass_obj
def run(ctx: Context, request_file: str, profile: str, work_dir: Path | None,
        old_work_dir: Path | None, resume: bool, keep_work: bool, configs: tuple[Path, ...],
        old_configs: tuple[Path, ...], stub: bool) -> None:
    """Validate a request, check its inputs, run the pipeline and wait for it.

    Prints the instance_id first, then progress (tasks done/total), then where the results are.
    Object-storage inputs are staged into a local cache first; an object-storage output_dir
    receives the results after the run, its manifest last.

    \b
    Example:
      cnvkit-nf run request.json --profile local
    """
    configs += old_configs
    work_dir = work_dir or old_work_dir
    validation = _load(request_file)
    _report(validation.problems, False, valid=True)
    job_plan, problems = plan(validation.request, ctx.storage_config, everywhere())
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

    store = JobStore(ctx.checked(record=True).jobs_db)
    job = store.latest_for_request(validation.request.raw) if resume else None
    try:
        if job is None:
            if resume:
                click.echo("no earlier run of this request: starting afresh", err=True)
            job = new_job(store, job_plan, ctx.state_dir)
        elif job.final:  # run again: its finished tasks are reused
            job = store.retry(job.instance_id)
    except Occupied as err:
        _report([occupied(err)], False, valid=False)
        sys.exit(EXIT_INVALID)
    click.echo(f"instance_id: {job.instance_id}")
    execution = Execution(store, job, job_plan, ctx.state_dir,
                          RunOptions(profile, work_dir, list(configs), stub, keep_work),
                          log=lambda message: click.echo(message, err=True),
                          references=ctx.references)
    for sig in (signal.SIGINT, signal.SIGTERM):
        # in a thread of its own: a second signal must not wait on the first one's locks
        signal.signal(sig, lambda *_: threading.Thread(target=execution.cancel).start())
    with _display() as (staging, progress):
        final = execution.execute(progress, staging)
    _summarise(final, validation.request.output_dir.raw)
    if final.status != FINISHED:
        sys.exit(EXIT_CANCELLED if final.status == CANCELLED else EXIT_FAILED)


@contextmanager
def _display():
    """Callbacks `(staging(done, total), progress(job))` that show how a job advances: bars on
    a terminal, plain lines otherwise."""
    if not sys.stderr.isatty():
        last = [""]

        def plain(job: Job) -> None:
            if job.progress != last[0]:
                last[0] = job.progress
                click.echo(f"progress: {job.progress} tasks", err=True)

        yield (lambda done, total: click.echo(f"staging inputs: {done}/{total} objects",
                                              err=True)), plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as bar:
        tasks: dict[str, int] = {}

        def show(name: str, done: int, total: int | None, description: str) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(description, total=total)
            bar.update(tasks[name], completed=done, total=total, description=description)

        yield (lambda done, total: show("staging", done, total, "staging inputs"),
               lambda job: show("run", job.tasks_done, job.tasks_total, job.status.lower()))


def _summarise(job: Job, output_dir: str) -> None:
    click.echo(f"status: {job.status}")
    click.echo(f"progress: {job.progress}")
    if job.status == FINISHED:
        click.echo(f"results: {output_dir}")
        click.echo(f"manifest: {output_dir.rstrip('/')}/{manifest.NAME}")
    elif job.message:
        click.echo(f"message: {job.message}")
        click.echo(f"log: {RunFolder(job.run_dir).nextflow_log}")
    for warning in job.warnings:
        click.echo(f"warning: {warning}")


def _server_options(command):
    """--server, --project and --token: where a command finds the job service."""
    command = click.option("--token", envvar="CNVKIT_NF_TOKEN",
                           help="The X-Auth-Token (env CNVKIT_NF_TOKEN).")(command)
    command = click.option("--project", envvar="CNVKIT_NF_PROJECT",
                           help="The project id on the server (env CNVKIT_NF_PROJECT).")(command)
    return click.option("--server", metavar="URL",
                        help="Ask a job service (cnvkit-nf serve) instead of the state dir. "
                             "A busy answer (503, 429) or a refused connection is tried again "
                             f"for up to {RETRY_SECONDS:g} s (env CNVKIT_NF_RETRY_SECONDS).")(
        command)


def _ask(server: str | None, project: str | None, token: str | None,
         call: Callable[[Client], dict], alone: str | None = None) -> dict | None:
    """The answer of `call` to the job service at `server`; None without `--server` (unless
    `alone` says why the command needs one). A service's error answer is printed, each problem
    on its own line, and the command exits."""
    if server is None:
        if alone:
            raise click.UsageError(alone)
        return None
    if not project:
        raise click.UsageError("--server needs --project")
    try:
        client = Client(server, project, token, retry_seconds=_retry_seconds(),
                        say=lambda message: click.echo(message, err=True))
        return call(client)
    except ServiceError as err:
        for problem in err.body.get("problems", []):
            click.echo(format_problem(Problem(**problem)), err=True)
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_INVALID)


def _retry_seconds() -> float:
    """How long a call to the service is tried again (env CNVKIT_NF_RETRY_SECONDS)."""
    text = os.environ.get("CNVKIT_NF_RETRY_SECONDS", "")
    try:
        seconds = float(text) if text else RETRY_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise click.UsageError(f"CNVKIT_NF_RETRY_SECONDS={text!r}: give seconds from 0 to 3600")
    return seconds


@main.command()
@click.argument("request_file", type=click.Path(dir_okay=False, exists=True))
@_server_options
def submit(request_file: str, server: str, project: str, token: str | None) -> None:
    """Submit a request to a job service; print its instance_id.

    \b
    Example:
      cnvkit-nf submit request.json --server http://127.0.0.1:8080 --project lab-a
    """
    text = Path(request_file).read_text(encoding="utf-8")
    answer = _ask(server, project, token, lambda client: client.submit(text),
                  "submit needs --server and --project")
    for warning in answer.get("warnings", []):
        click.echo(warning, err=True)
    click.echo(f"instance_id: {answer['instance_id']}")


@main.command()
@click.argument("instance_id")
@_server_options
def cancel(instance_id: str, server: str, project: str, token: str | None) -> None:
    """Cancel a job of a job service.

    \b
    Example:
      cnvkit-nf cancel INSTANCE_ID --server http://127.0.0.1:8080 --project lab-a
    """
    _ask(server, project, token, lambda client: client.cancel(instance_id),
         "cancel needs --server and --project (a job run by `cnvkit-nf run` is cancelled with "
         "Ctrl-C or SIGTERM)")
    click.echo(f"{instance_id}: cancelling")


@main.command()
@click.argument("instance_id")
@_server_options
def retry(instance_id: str, server: str, project: str, token: str | None) -> None:
    """Run a FAILED or CANCELLED job of a job service again, reusing its finished tasks.

    \b
    Example:
      cnvkit-nf retry INSTANCE_ID --server http://127.0.0.1:8080 --project lab-a
    """
    answer = _ask(server, project, token, lambda client: client.retry(instance_id),
                  "retry needs --server and --project (a job run by `cnvkit-nf run` is run "
                  "again with `cnvkit-nf run --resume REQUEST`)")
    click.echo(f"{instance_id}: {answer['status']}")


@main.command()
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_server_options
@click.pass_obj
def log(ctx: Context, instance_id: str, as_json: bool, server: str | None, project: str | None,
        token: str | None) -> None:
    """Show a job's failure in full, its failed tasks' error output and Nextflow's log.

    \b
    Example:
      cnvkit-nf log INSTANCE_ID
    """
    shown = _ask(server, project, token, lambda client: client.log(instance_id))
    if shown is None:
        shown = job_log(_local_job(ctx.state_dir, instance_id))
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(shown["log"], nl=False)
    for task in shown["failed_tasks"]:
        click.echo(f"--- failed task {task['name']} (exit {task['exit']}):", err=True)
        click.echo(task["stderr"], nl=False, err=True)
    if shown["failure"]:
        click.echo(f"--- {instance_id} {shown['status']}:\n{shown['failure']}", err=True)


STATUS_FIELDS = ("instance_id", "status", "progress", "start_time", "duration", "message",
                 "warnings")


@main.command()
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_server_options
@click.pass_obj
def status(ctx: Context, instance_id: str, as_json: bool, server: str | None,
           project: str | None, token: str | None) -> None:
    """Show a job's state (LAUNCHING, RUNNING, FINISHED, FAILED, CANCELLED, CANCELING).

    \b
    Example:
      cnvkit-nf status INSTANCE_ID --json
    """
    shown = _ask(server, project, token, lambda client: client.job(instance_id))
    if shown is None:
        shown = _local_job(ctx.state_dir, instance_id).instance()
    body = {key: shown[key] for key in STATUS_FIELDS}
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        for key, value in body.items():
            if key == "warnings":
                for warning in value:
                    click.echo(f"warning: {warning}")
            else:
                click.echo(f"{key}: {'' if value is None else value}")


def _local_job(state_dir: Path, instance_id: str) -> Job:
    """A job of the state dir, as `settle` leaves it."""
    store = JobStore(StateDir(state_dir).jobs_db)
    job = store.get(instance_id)
    if job is None:
        raise click.ClickException(f"no job {instance_id} in {state_dir}")
    return settle(store, job)


@main.command(name="list")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_jobs(ctx: Context, limit: int, offset: int, as_json: bool) -> None:
    """List the jobs of this state dir, newest first.

    \b
    Example:
      cnvkit-nf list --limit 20
    """
    store = JobStore(ctx.state.jobs_db)
    count, jobs = store.list(limit=limit, offset=offset)
    jobs = [settle(store, job) for job in jobs]
    fields = (*STATUS_FIELDS[:-1], "output_dir")
    rows = [{key: job.instance()[key] for key in fields} for job in jobs]
    if as_json:
        click.echo(json.dumps({"count": count, "instances": rows}, indent=2))
        return
    for row in rows:
        click.echo(f"{row['instance_id']}  {row['status']:<9}  {row['progress']:>7}  "
                   f"{row['duration']:>6}s  {row['output_dir']}")
    click.echo(f"{len(rows)} of {count} job(s)", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--service-config", "service_config", type=click.Path(dir_okay=False,
              exists=True), envvar="CNVKIT_NF_SERVICE_CONFIG",
              help="JSON settings: tokens, data_roots, limits (env CNVKIT_NF_SERVICE_CONFIG).")
@click.option("--config", "old_service_config", hidden=True,
              type=click.Path(dir_okay=False, exists=True),
              callback=lambda _c, _p, value: _renamed("serve --config", "--service-config",
                                                      value))
@click.option("--data-root", "data_roots", multiple=True,
              type=click.Path(file_okay=False, exists=True, resolve_path=True),
              help="A folder whose files requests of every project may name by local path, "
                   "read-only (repeatable).")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs run at once; more wait as LAUNCHING, oldest first.")
@click.option("--profile", default="local", show_default=True, help="Nextflow profile(s).")
@click.option("-c", "--nextflow-config", "configs", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Extra Nextflow config file for every job (repeatable).")
@click.option("--stub", is_flag=True,
              help="Run every job with -stub-run: checks the wiring, computes nothing.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True),
              help="PEM certificate (chain): serve HTTPS, with --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True),
              help="PEM private key of --tls-cert.")
@click.pass_obj
def serve(ctx: Context, host: str, port: int, service_config: str | None,
          old_service_config: str | None, data_roots: tuple[str, ...], concurrency: int,
          profile: str, configs: tuple[Path, ...], stub: bool, tls_cert: str | None,
          tls_key: str | None) -> None:
    """Run the job service: the seed's REST API over HTTP (see schema/openapi.json).

    Stop it with SIGTERM or Ctrl-C: running jobs go on, and are followed again at the next start;
    a publication under way completes or rolls back (and is done again at the next start).

    \b
    Example:
      cnvkit-nf --state-dir /srv/cnvkit serve --service-config service.json --port 8080
    """
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        config = settings.load(service_config or old_service_config, data_roots)
        nextflow.ensure(log=lambda m: click.echo(m, err=True))
    except settings.ConfigError as err:
        raise click.ClickException(str(err)) from None
    except nextflow.NextflowError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_NO_NEXTFLOW)
    if not config.callers:
        raise click.ClickException("no tokens are configured (--config or CNVKIT_NF_TOKENS): "
                                   "nobody could call the service")
    try:
        work = ctx.work_dir or ctx.state.work  # as given, or as recorded
    except LayoutError as err:
        raise click.ClickException(str(err)) from None
    for folder, name in ((ctx.state_dir, "state dir (--state-dir)"),
                         (work, "work dir (--work-dir)")):
        if config.could_hold(folder):
            raise click.ClickException(f"the {name} {folder} lies in a data root, or holds "
                                       "one: projects could change the inputs the jobs read; "
                                       "put it elsewhere")
    state = ctx.checked(record=True)
    try:
        config.prepare()  # each project's folder in the writable shared roots
    except settings.ConfigError as err:
        raise click.ClickException(str(err)) from None
    state.path.mkdir(parents=True, exist_ok=True)
    lock = open(state.service_lock, "w")  # noqa: SIM115 - held while serving
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise click.ClickException(f"another cnvkit-nf serve uses {ctx.state_dir}") from None
    store = JobStore(state.jobs_db)
    log = lambda message: click.echo(message, err=True)  # noqa: E731
    if state.work != state.path:
        log(f"work dir {state.work}: run folders' shared parts, staged inputs, kept references")
    if (kind := file_system(state.path)) in NETWORK_FILE_SYSTEMS:
        log(f"warning: the state dir {state.path} is on {kind}, where SQLite (WAL) and flock "
            "may not hold: keep it on this host's local disk, and what the cluster's nodes see "
            "in --work-dir (docs/slurm.md, \"Where the files go\")")
    pool = WorkerPool(store, ctx.state_dir, RunOptions(profile, None, list(configs), stub),
                      ctx.storage_config, config.roots, concurrency, log,
                      admit=config.request_problems,
                      references=ctx.references, check_limits=config.check_limits())
    app = App(Jobs(store, pool, config, ctx.storage_config))
    stop = threading.Event()
    if config.retention is not None:
        retention.schedule(ctx.state_dir, store, config.retention, log, stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = http_server.serve(
            app, http_server.Transport(host, port, config.limits, tls_cert, tls_key),
            ready=lambda url: click.echo(f"listening on {url}", nl=True))
    except OSError as err:
        raise click.ClickException(str(err)) from None
    sys.stdout.flush()
    while not stop.wait(timeout=1):  # a wait woken each second: a signal that another thread
        pass  # took is handled then, not at the next signal
    log("stopping: no more jobs start; publications under way complete or roll back")
    server.stop()
    pool.stop(grace_seconds=PUBLICATION_GRACE_SECONDS)
    log(f"stopped; {pool.running} running job(s) go on and are followed at the next start")


@main.group()
def cache() -> None:
    """The references kept for reuse between jobs (see --reference-cache-size).

    \b
    Example:
      cnvkit-nf cache list
    """


@cache.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def cache_list(ctx: Context, as_json: bool) -> None:
    """List the kept references, most recently used first.

    \b
    Example:
      cnvkit-nf cache list --json
    """
    entries = ReferenceCache.of(ctx.checked()).entries()
    rows = [{"project": e.project, "key": e.key, "size": e.size, "created": int(e.created),
             "used": int(e.used), "controls": e.record.get("controls", []),
             "fasta": e.record.get("fasta", {}).get("name"),
             "options": e.record.get("options", {}), "reference": str(e.reference)}
            for e in entries]
    if as_json:
        click.echo(json.dumps({"count": len(rows), "references": rows}, indent=2))
        return
    for row in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["used"]))
        click.echo(f"{row['key'][:12]}  {row['project']:<12}  {row['size'] / 1e6:>8.1f} MB  "
                   f"used {used}  {row['fasta']}  {', '.join(row['controls']) or 'flat'}")
    total = sum(row["size"] for row in rows)
    click.echo(f"{len(rows)} reference(s), {total / 1e6:.1f} MB of {ctx.cache_bytes / 1e6:.1f} "
               "MB", err=True)


@cache.command(name="prune")
@click.option("--max-size", "max_size", callback=lambda _c, _p, v: None if v is None else _size(v),
              help="Keep at most this much, least recently used removed first (default: "
                   "--reference-cache-size; 0 removes every reference not in use).")
@click.option("--project", help="Only this project's references.")
@click.pass_obj
def cache_prune(ctx: Context, max_size: int | None, project: str | None) -> None:
    """Remove the least recently used references beyond a size; those in use stay.

    \b
    Example:
      cnvkit-nf cache prune --max-size 20G
    """
    references = ReferenceCache.of(ctx.checked(), ctx.cache_bytes)
    removed = references.prune(max_size, project)
    for entry in removed:
        click.echo(f"removed {entry.key[:12]}  {entry.project}  {entry.size / 1e6:.1f} MB")
    left = references.entries(project)
    click.echo(f"{len(removed)} removed, {len(left)} kept "
               f"({sum(e.size for e in left) / 1e6:.1f} MB)", err=True)


def _duration(text: str | None) -> float | None:
    try:
        return None if text is None else retention.parse_duration(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration such as 30d, 12h or 90m") from None


@main.command()
@click.option("--max-age", callback=lambda _c, _p, value: _duration(value),
              help="Forget jobs that ended longer ago than this (e.g. 30d, 12h), their run "
                   "folders with them; remove staged inputs unused as long.")
@click.option("--max-disk", callback=lambda _c, _p, value: None if value is None else _size(value),
              help="Bound of run folders and staged inputs (e.g. 200G): beyond it, unused "
                   "staged inputs go first, then the run folders of the oldest ended jobs.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--service-config", "service_config", type=click.Path(dir_okay=False,
              exists=True), envvar="CNVKIT_NF_SERVICE_CONFIG",
              help="Without --max-age/--max-disk: use the policy of its `retention` setting.")
@click.pass_obj
def clean(ctx: Context, max_age: float | None, max_disk: int | None, dry_run: bool,
          as_json: bool, service_config: str | None) -> None:
    """Remove what the retention policy no longer keeps: old job records with their run folders,
    run folders and staged inputs beyond a disk bound. Nothing an active job uses is removed.

    \b
    Example:
      cnvkit-nf clean --max-age 30d --dry-run
    """
    policy = retention.Policy(max_age, max_disk)
    if policy.empty and service_config:
        try:
            scheduled = settings.load(service_config).retention
        except settings.ConfigError as err:
            raise click.ClickException(str(err)) from None
        policy = scheduled.policy if scheduled else policy
    if policy.empty:
        raise click.UsageError("give --max-age, --max-disk or a --service-config with a "
                               "retention setting: clean removes nothing by default")
    if not ctx.state_dir.is_dir():
        raise click.ClickException(f"no state dir {ctx.state_dir}")
    report = retention.clean(ctx.state_dir, JobStore(ctx.checked().jobs_db), policy, dry_run)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        click.echo(f"{verb} {item.path}  {item.bytes / 1e6:.1f} MB  {item.why}")
    for item in report.kept:
        click.echo(f"kept {item.path}  {item.bytes / 1e6:.1f} MB  {item.why}")
    click.echo(report.summary(), err=True)


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def verify(output_dir: Path) -> None:
    """Check a result folder against its manifest: exit 0 when complete and intact.

    \b
    Example:
      cnvkit-nf verify results/
    """
    problems = manifest.verify(output_dir)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(EXIT_INVALID)
    click.echo(f"{output_dir}: complete")


if __name__ == "__main__":
    main(prog_name="cnvkit-nf")
