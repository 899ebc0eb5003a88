"""A request's local files, opened only inside the roots its job may use (see `confined`).

When a request is submitted its files are opened, and their content checked through those very
descriptors (`bin/check_inputs.py` reads links to them). When its job's turn comes they are
opened again, and what is opened then is handed to the pipeline (`input_store`); results are
written into the output folder only through descriptors (`publish_local`).

The content check runs in a process of its own that bounds itself (`CheckLimits`: its memory,
its CPU time, its priority) before it reads a file; the caller bounds its wall-clock time. A
check that ends any other way than with its report is a problem of the request, never an
exception of the caller.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnvkit_nf.contract.model import EXCLUDE_FIELD, INPUT_FIELDS, PATH_FIELDS, Request
from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.paths import index_names
from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.contract.request import sample_name, sample_rows
from cnvkit_nf.pipeline_files import BIN
from cnvkit_nf.storage import confined
from cnvkit_nf.storage.confined import Roots

CHECK_INPUTS = BIN / "check_inputs.py"
NO_TARGETS = "no targets (--bed)"  # the check's problem of a job without the BED it needs
NO_ROOTS = ("local paths are not accepted by this service (it has no data roots); use an "
            "object-storage URI")


@dataclass(frozen=True)
class CheckLimits:
    """What one run of the input check may cost. The memory and CPU time are limits the check
    sets on itself (its streaming reading stays well within the memory); the wall-clock time is
    the caller's, for a check that waits (a stalled file system) or gets little of the CPU.
    The CPU time lets a gzip FASTA of hg38's size (3.1 Gb) without a .fai be read whole twice,
    for its contigs and for the MD5s a CRAM's header is compared with: 14 s and 19 s of CPU on
    the development machine (220 and 170 Mb/s), so more than 3 times that on a slower one."""

    memory_bytes: int = 200_000_000
    cpu_seconds: int = 120
    wall_seconds: float = 600
    nice: int = 10  # the check yields to the service's API and to running jobs

    def arguments(self) -> list[str]:
        """The options of `bin/check_inputs.py` that set these limits."""
        return [f"--max-memory={self.memory_bytes}", f"--max-cpu-seconds={self.cpu_seconds}",
                f"--nice={self.nice}"]


DEFAULT_CHECK = CheckLimits()  # the limits unless a caller (the job service) gives its own


@dataclass
class Input:
    """One local input as the request names it, opened: the file, then its indexes."""

    path: str  # as the request names it
    files: list[tuple[str, int]]  # (file name, read-only descriptor)

    def close(self) -> None:
        for _, fd in self.files:
            os.close(fd)


def open_inputs(request: Request, roots: Roots) -> tuple[list[Input], list[Problem]]:
    """Open every local file a request's job reads, with the indexes beside it, inside the
    readable roots; the caller closes them. Problems say which field and why not."""
    opened: list[Input] = []
    problems: list[Problem] = []
    for field, location in request.inputs():
        if location.is_remote:
            continue
        if not roots.readable:
            problems.append(Problem(field, NO_ROOTS))
            continue
        path = roots.absolute(location.key)
        try:
            files = [(os.path.basename(path), confined.open_file(path, roots.readable))]
        except confined.Refused as err:
            problems.append(Problem(field, refusal(location.raw, err, roots)))
            continue
        opened.append(Input(location.raw, files))
        for index in index_names(field, path):
            name = os.path.basename(index)
            try:
                files.append((name, confined.open_file(index, roots.readable)))
            except confined.Missing:
                continue
            except confined.Refused as err:
                problems.append(Problem(field, refusal(location.raw, err, roots,
                                                       f"its index {name}")))
    return opened, problems


def path_problems(request: Request, roots: Roots) -> list[Problem]:
    """What is wrong with a request's local paths (valid or not: paths that do not parse are
    left to the validation): inputs that cannot be opened inside the readable roots, an output
    folder outside the writable ones."""
    opened, problems = open_inputs(request, roots)
    for item in opened:
        item.close()
    return problems + _output_problems(request, roots)


def check(request: Request, roots: Roots, limits: CheckLimits = DEFAULT_CHECK) -> list[Problem]:
    """Every problem of the files of a valid request whose paths are all local: as
    `path_problems`, then the content of every file that could be opened, read through its
    descriptor (`content_problems`, within `limits`)."""
    opened, problems = open_inputs(request, roots)
    problems += _output_problems(request, roots)
    if not opened:
        return problems
    try:
        with tempfile.TemporaryDirectory(prefix="cnvkit-nf-check-") as folder:
            views, descriptors = views_of(opened, Path(folder))
            params = to_params(request, staged=views)
            viewed = {str(view) for view in views.values()}

            def opened_only(path: str | None) -> str | None:
                return path if path in viewed else None

            checked = {name: [opened_only(p) for p in params[name]]
                       for name in INPUT_FIELDS if name in params}
            checked |= {name: opened_only(params.get(name)) for name in PATH_FIELDS}
            checked[EXCLUDE_FIELD] = [opened_only(p) for p in params.get(EXCLUDE_FIELD, [])]
            checked["method"] = params["method"]
            if "samples" in params:
                checked["samples"] = [{**row, "bam": opened_only(row["bam"]),
                                       "vcf": opened_only(row.get("vcf"))}
                                      for row in params["samples"]]
            checked["checked_options"] = params["checked_options"]
            shown = {f"{view.parent}/": os.path.join(os.path.dirname(item_path), "")
                     for item_path, view in views.items()}  # the folders the user knows
            found = content_problems(checked, descriptors, shown, limits,
                                     fields_of(request, views))
            if request.bed is not None:  # given, and refused where it lies: said already
                found = [p for p in found if not p.message.startswith(NO_TARGETS)]
            return problems + found
    finally:
        for item in opened:
            item.close()


def views_of(opened: list[Input], folder: Path) -> tuple[dict[str, Path], list[int]]:
    """Links to the opened files, by request path: `/proc/self/fd/N`, which a child process
    that inherits descriptor N opens as the very file that was checked. Indexes sit beside."""
    views, descriptors = {}, []
    for number, item in enumerate(opened):
        place = folder / str(number)
        place.mkdir()
        for name, fd in item.files:
            (place / name).symlink_to(f"/proc/self/fd/{fd}")
            descriptors.append(fd)
        views[item.path] = place / item.files[0][0]
    return views, descriptors


def fields_of(request: Request, staged: dict[str, Path]) -> dict[str, str]:
    """The request's field of each input by the local path its params name it with."""
    return {str(staged[location.raw]): field for field, location in request.inputs()
            if location.raw in staged}


def sample_files(params: dict) -> list[tuple[str, str | None, dict]]:
    """(id, BAM, row) of each sample of a job's params: its rows (`samples`), or the seed's
    two lists (a row of its own BAM and role)."""
    if "samples" in params:
        return [(row["id"], row["bam"], row) for row in params["samples"]]
    return [(sample_name(bam) if bam else "", bam, {"bam": bam}) for bam in
            params["experimental_inputs"] + params["control_inputs"]]


def content_problems(params: dict, pass_fds: Sequence[int] = (),
                     shown: dict[str, str] | None = None,
                     limits: CheckLimits = DEFAULT_CHECK,
                     fields: dict[str, str] | None = None) -> list[Problem]:
    """The content checks of `bin/check_inputs.py` on a job's local inputs, as its params name
    them (None: not checked), within `limits`; `shown` gives the name a user knows for a part
    of a path, `pass_fds` the descriptors its links need, `fields` the request's field of
    each path (default: the seed's fields, found in the params)."""
    shown = shown or {}
    command = [sys.executable, str(CHECK_INPUTS), "--json", *limits.arguments()]
    for option, name in (("--ref", "ref"), ("--bed", "bed"), ("--annotation", "annotation_file"),
                         ("--access-bed", "access_bed")):
        command += [option, params[name]] if params.get(name) else []
    command += [f"--method={params.get('method') or 'hybrid'}"]
    for path in params.get(EXCLUDE_FIELD) or []:
        command += ["--exclude", path] if path else []
    samples = sample_files(params)
    rows = [row for _, _, row in samples]
    for name, bam, row in samples:
        command += ["--bam", f"{name}={bam}"] if bam else []
        if row.get("vcf"):  # the columns it must have: the sample's, its normal's
            command += ["--vcf", f"{name}={row['vcf']}", "--vcf-columns",
                        f"{name}={','.join(sample_rows.vcf_columns(row, rows))}"]
    if params.get("reference_cnn"):  # compared with the options it was built with
        command += ["--reference-cnn", params["reference_cnn"]]
        command += [f"--option={field}={option['args']}"  # as checked: -p apart
                    for field, option in params["checked_options"].items()]
    try:
        result = subprocess.run(command, capture_output=True, text=True, pass_fds=pass_fds,
                                timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:  # the check was killed
        return [Problem("", f"the input check took more than {limits.wall_seconds:g} s (wall "
                        "clock) and was stopped: the input files are on a file system that "
                        "answers slowly, or the machine is too busy; try again later")]
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [Problem("", _failure(result, limits))]

    def users(text: str) -> str:
        for path, known in shown.items():
            text = text.replace(path, known)
        return text

    return [Problem((fields or {}).get(item["file"]) or _field_of(item["file"], params),
                    users(f"{item['file']}: {item['message']}" if item["file"]
                          else item["message"]),
                    item.get("severity", "error"))
            for item in report["problems"]]


def _failure(result: subprocess.CompletedProcess, limits: CheckLimits) -> str:
    """Why the input check ended without its report."""
    if result.returncode < 0:
        number = -result.returncode
        name = next((s.name for s in signal.Signals if s == number), f"signal {number}")
        return (f"the input check was killed ({name}) before it finished; it may have needed "
                f"more than its {limits.cpu_seconds} s of CPU or {limits.memory_bytes / 1e6:.0f} "
                "MB of memory")
    return f"the input check failed: {result.stderr.strip()[-2000:]}"


def index_decisions(params: dict, limits: CheckLimits = DEFAULT_CHECK) -> dict:
    """Which indexes of a job's inputs, as its params name them, the pipeline uses as they are
    and which it builds: the input check's decisions (`check_inputs.py --indexes-only`, within
    `limits`)."""
    command = [sys.executable, str(CHECK_INPUTS), "--indexes-only", *limits.arguments(),
               "--ref", params["ref"]]
    for name, bam, _ in sample_files(params):
        command += ["--bam", f"{name}={bam}"]
    with tempfile.TemporaryDirectory(prefix="cnvkit-nf-indexes-") as folder:
        decided = Path(folder) / "indexes.json"
        subprocess.run([*command, "--indexes", str(decided)], check=True, capture_output=True,
                       timeout=limits.wall_seconds)
        return json.loads(decided.read_text())


def _field_of(path: str, params: dict) -> str:
    """The request field that named a file, for error messages (of the seed's fields)."""
    for name in ("experimental_inputs", "control_inputs"):
        if path in params.get(name, []):
            return f"{name}[{params[name].index(path)}]"
    excluded = params.get(EXCLUDE_FIELD) or []
    if path in excluded:
        return f"{EXCLUDE_FIELD}[{excluded.index(path)}]"
    return next((n for n in ("ref", "bed", "annotation_file", "reference_cnn", "access_bed")
                 if params.get(n) == path), "")


def _output_problems(request: Request, roots: Roots) -> list[Problem]:
    output = request.output_dir
    if output is None or output.is_remote:
        return []
    reason = output_problem(output.key, roots)
    return [Problem("output_dir", reason)] if reason else []


def output_problem(path: str, roots: Roots) -> str | None:
    """Why results cannot be written into the local folder `path` (it may not exist yet)."""
    return output_folder(path, roots)[1]


def output_folder(path: str, roots: Roots) -> tuple[str | None, str | None]:
    """Where results written into the local folder `path` would go, or why they cannot be
    (one of the two is None). The place is what the walk inside the writable roots reaches,
    as publishing walks it: the real path of the deepest folder that exists on the way, then
    the names still missing, ending in "/"; so it always lies in a writable root."""
    if not roots.readable:
        return None, NO_ROOTS
    path = roots.absolute(path)
    try:
        fd, reached, missing = confined.located_folder(path, roots.writable)
    except confined.Refused as err:
        if (isinstance(err, confined.Outside) and not confined.inside(path, roots.writable)
                and confined.inside(path, roots.readable)):
            places = ", ".join(map(str, roots.writable)) or "none"
            return None, (f"{path}: is in a data root that is read-only for {roots.owner}; "
                          f"results may be written under: {places}")
        return None, refusal(path, err, roots, writing=True)
    except OSError as err:  # e.g. its root removed while it was walked: refused, not a crash
        return None, f"{path}: cannot be opened ({err.strerror})"
    with confined.opened(fd):
        if not os.access(".", os.W_OK, dir_fd=fd):
            where = path if not missing else "the folder that would hold it"
            return None, f"{path}: cannot write into {where} (permission denied)"
    return os.path.join(reached, *missing, ""), None


def refusal(path: str, err: confined.Refused, roots: Roots, subject: str = "",
            writing: bool = False) -> str:
    """Why `path` (or its `subject`, e.g. its index) was refused, with the roots allowed."""
    text = f"{path}: {subject + ' ' if subject else ''}{err}"
    if isinstance(err, confined.Outside):
        places = ", ".join(map(str, roots.writable if writing else roots.readable))
        text += (f"; local paths must be inside the {'writable ' if writing else ''}data "
                 f"roots of {roots.owner}: {places}")
    return text
