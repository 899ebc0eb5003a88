"""Check the per-substep option strings (``*_conf``) against CNVkit's own argument parsers.

The one home of these rules: the launcher and the job service load this file
(`cnvkit_nf.contract.confs`), and the pipeline's input check (`check_inputs.py --option FIELD=ARGS`)
imports it where CNVkit is installed (its task's container or conda environment), so that a
direct or Tower run gets the very same checks. Standard library and CNVkit only.
"""

import argparse
import contextlib
import functools
import io
import re
import shlex
from dataclasses import dataclass
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """What is wrong with one option string (field, message, "error" or "warning")."""

    field: str
    message: str
    severity: str = "error"

SUBSTEP_OF_FIELD: dict[str, str] = {
    "target_conf": "target",
    "antitarget_conf": "antitarget",
    "coverage_conf": "coverage",
    "sex_conf": "sex",
    "reference_conf": "reference",
    "fix_conf": "fix",
    "segment_conf": "segment",
    "genemetrics_conf": "genemetrics",
    "call_conf": "call",
    "access_conf": "access",
}
_PARSER_NAME = {
    "target": "P_target",
    "antitarget": "P_anti",
    "coverage": "P_coverage",
    "sex": "P_sex",
    "reference": "P_reference",
    "fix": "P_fix",
    "segment": "P_segment",
    "genemetrics": "P_genemetrics",
    "call": "P_call",
    "access": "P_access",
}

# Destinations the pipeline sets itself: inputs, outputs, helper programs and help. A user
# option that sets one is rejected; so is anything that changes a positional destination.
MANAGED_DESTS = frozenset(
    ["output", "dataframe", "purity_output"]  # outputs
    + ["fasta", "targets", "antitargets", "reference", "reference_arg", "segment"]  # inputs
    + ["access", "annotate", "vcf", "purity_file", "exclude"]  # more inputs
    + ["rscript_path", "help"]  # a program to run; help prints and exits
)

_CHAR_CLASS = "A-Za-z0-9_.,=:+/%-"
ALLOWED_CHARS = "ASCII letters, digits and - _ . , = : + / %"
TOKEN_RE = re.compile(f"[{_CHAR_CLASS}]+")
# The same whitelist plus space, for a whole re-quoted ``args`` string; valid in Java, Groovy
# and Python. Match it against the whole string: Groovy ``==~``, Java ``matches()``, Python
# ``re.fullmatch`` (no anchors: ``$`` would accept a trailing newline in Java and Python).
PIPELINE_CHAR_PATTERN = f"[ {_CHAR_CLASS}]*"

# call's options that name a sample's own VCF: refused, as a VCF is a sample's (issue 24).
PER_SAMPLE_FILES = {
    "vcf": "VCFs go per sample: give each sample's in samples[].vcf or the samplesheet's vcf "
           "column",
    "sample_id": "a VCF's columns go per sample: samples[].vcf_sample or the samplesheet's "
                 "vcf_sample column",
    "normal_id": "a VCF's normal column goes per sample: name the matched normal in "
                 "samples[].normal or the samplesheet's normal column",
}
# call's options that set a fact of a sample: allowed as the cohort's default, with a warning
# (the pipeline appends a sample's own after them, and argparse's last value wins). Their
# values are kept only when the string sets them.
PER_SAMPLE_FACTS = {"sample_sex": ("-x/--sample-sex", "sex"), "purity": ("--purity", "purity"),
                    "ploidy": ("--ploidy", "ploidy")}

# access's option that names a file: refused, as exclusion BEDs are inputs of their own (issue 25).
INPUT_FILES = {
    "exclude": "exclusion BEDs go in access_exclude (a list of BED files: as input files they "
               "are checked, confined to the allowed roots and pinned), not in access_conf",
}

# The assays (`method`, as `cnvkit.py batch -m`) and the bin sizes batch uses for them.
METHODS = ("hybrid", "amplicon", "wgs")
WGS_TARGET_SIZE = 5000  # batch's target bin size for wgs when autobin does not apply
# Destinations kept unset unless an option sets them: whether --avg-size was given.
SIZE_DESTS = {"target": "avg_size", "antitarget": "avg_size"}

# Sex-chromosome settings that should agree among the substeps that have them.
SEX_OPTIONS = {
    "male_reference": "-y/--male-reference",
    "diploid_parx_genome": "--diploid-parx-genome",
}

_SHLEX_MESSAGES = {
    "No closing quotation": "unbalanced quote",
    "No escaped character": "trailing backslash",
}
_UNSET = object()
MAX_PROCESSES = 1024  # largest -p/--processes: a CPU request, and a 32-bit integer in Nextflow


@dataclass(frozen=True)
class CheckedOptions:
    """A validated option string: re-quoted ``args`` (without -p) and the parsed values."""

    field: str
    substep: str
    args: str
    processes: int | None
    values: dict[str, Any]


def autobin_applies(method: str = "hybrid", autobin: bool | None = None) -> bool:
    """Whether bin sizes not given come from the data: `autobin` as given, else only for
    wgs (hybrid and amplicon keep CNVkit's defaults unless the request asks)."""
    return method == "wgs" if autobin is None else bool(autobin)


def bin_size_plan(checked: dict[str, CheckedOptions], method: str = "hybrid",
                  autobin: bool | None = None) -> dict[str, dict]:
    """Where target's and antitarget's average bin sizes come from (the one home of the rule,
    after `cnvkit.py batch -m METHOD`): `{"target_conf": {"size", "size_from", "split",
    "autobin"}, "antitarget_conf": {...}}`. `size` is the number given (or wgs's 5000), None
    when autobin computes it in the job or CNVkit's default applies; `split` whether the
    pipeline adds `--split` to target (with autobin, or for wgs: batch always splits);
    `autobin` whether the job computes sizes not given from the data."""
    automatic = autobin_applies(method, autobin)

    def given(field: str) -> float | int | None:
        option = checked.get(field)
        value = option.values.get("avg_size") if option is not None else None
        return int(value) if isinstance(value, float) and value.is_integer() else value

    size = given("target_conf")
    if size is not None:
        target = {"size": size, "size_from": "target_conf"}
    elif automatic:
        target = {"size": None, "size_from": "autobin"}
    elif method == "wgs":
        target = {"size": WGS_TARGET_SIZE, "size_from": "wgs default"}
    else:
        target = {"size": None, "size_from": "cnvkit default"}
    target |= {"split": automatic or method == "wgs", "autobin": automatic}
    size = given("antitarget_conf")
    if method != "hybrid":
        antitarget = {"size": None, "size_from": "none"}
    elif size is not None:
        antitarget = {"size": size, "size_from": "antitarget_conf"}
    elif automatic:
        antitarget = {"size": None, "size_from": "autobin"}
    else:
        antitarget = {"size": None, "size_from": "cnvkit default"}
    antitarget |= {"split": False, "autobin": automatic}
    return {"target_conf": target, "antitarget_conf": antitarget}


def stage_options(checked: dict[str, CheckedOptions], method: str = "hybrid",
                  autobin: bool | None = None) -> dict[str, dict]:
    """What the pipeline's stages take of the checked strings (`params.checked_options`, or
    CHECK_INPUTS's options.json): `{FIELD: {"args", "processes"}}` for every field, one not
    checked being empty; target_conf's and antitarget_conf's also carry the bin-size plan
    (`bin_size_plan`: "size", "size_from", "split", "autobin") of the job's `method` and `autobin`
    (None: not given)."""
    options = {field: {"args": c.args, "processes": c.processes} if (c := checked.get(field))
               else {"args": "", "processes": None} for field in SUBSTEP_OF_FIELD}
    for field, plan in bin_size_plan(checked, method, autobin).items():
        options[field] |= plan
    return options


class _Unappended(list):
    """The preset of an option that appends (`-x FILE -x FILE`): still unset while empty."""


class _Rejected(Exception):
    """argparse refused the arguments; the message is argparse's."""


@functools.cache
def substep_parser(substep: str) -> argparse.ArgumentParser:
    """CNVkit's own parser of ``substep`` (imported lazily: cnvlib is slow to import)."""
    from cnvlib import commands

    return getattr(commands, _PARSER_NAME[substep])


def _parse(
    parser: argparse.ArgumentParser, argv: list[str], preset: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Parse quietly; destinations in ``preset`` stay ``_UNSET`` unless an option sets them."""
    out, err = io.StringIO(), io.StringIO()
    appended = {a.dest for a in parser._actions if isinstance(a, argparse._AppendAction)}
    namespace = argparse.Namespace(**{dest: _Unappended() if dest in appended else _UNSET
                                      for dest in preset})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            parsed = vars(parser.parse_args(argv, namespace))
        return {dest: (list(value) if value else _UNSET) if isinstance(value, _Unappended)
                else value for dest, value in parsed.items()}
    except SystemExit as exc:
        if exc.code == 0:
            raise _Rejected("-h/--help is not allowed") from None
        raise _Rejected(err.getvalue().strip().rpartition(": error: ")[2]) from None


def _token_problem(tokens: list[str]) -> str | None:
    """Why the tokens are unacceptable before parsing, or None."""
    bad = sorted({c for token in tokens for c in token if not TOKEN_RE.fullmatch(c)})
    if bad:
        return f"forbidden character(s) {' '.join(map(repr, bad))}; allowed are {ALLOWED_CHARS}"
    if "" in tokens:
        return "empty argument (remove the empty quotes)"
    if "--" in tokens:
        return "a bare '--' is not allowed"
    return None


def _drop_processes(tokens: list[str], flags: list[str]) -> list[str]:
    """The tokens without ``-p N``, ``-pN``, ``-p=N``, ``--processes N``, ``--processes=N``."""
    attached = tuple(f + "=" for f in flags) + tuple(f for f in flags if len(f) == 2)
    kept, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in flags:
            skip = True
        elif not token.startswith(attached):
            kept.append(token)
    return kept


def check_options(field: str, text: str) -> tuple[CheckedOptions | None, list[Problem]]:
    """Validate one ``*_conf`` string with the real CNVkit parser of its substep."""
    substep = SUBSTEP_OF_FIELD[field]
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        return None, [Problem(field, _SHLEX_MESSAGES.get(str(exc), str(exc)))]
    reason = _token_problem(tokens)
    if reason:
        return None, [Problem(field, reason)]
    try:
        return _check_parsed(field, substep, tokens)
    except _Rejected as exc:
        return None, [Problem(field, f"cnvkit.py {substep}: {exc}")]


def _check_parsed(
    field: str, substep: str, tokens: list[str]
) -> tuple[CheckedOptions | None, list[Problem]]:
    """Parse the tokens after dummy positionals and reject anything the pipeline manages."""
    parser = substep_parser(substep)
    optionals = {a.dest: a.option_strings for a in parser._actions if a.option_strings}
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    dummies = ["_"] * len(positionals)
    sizes = {SIZE_DESTS[substep]} if substep in SIZE_DESTS else set()
    preset = frozenset(optionals) & (MANAGED_DESTS | {"processes"} | PER_SAMPLE_FILES.keys()
                                     | PER_SAMPLE_FACTS.keys() | sizes)
    base = _parse(parser, dummies)
    parsed = _parse(parser, dummies + tokens, preset)
    messages = []
    for dest in positionals:
        if parsed[dest] != base[dest]:
            extra = parsed[dest][len(base[dest]) :]  # only list positionals can grow
            words = " ".join(extra)
            messages.append(f"unexpected argument(s) {words}: neither an option nor a value")
    per_sample = PER_SAMPLE_FILES if substep == "call" else \
        INPUT_FILES if substep == "access" else {}
    for dest in sorted(preset & MANAGED_DESTS | per_sample.keys()):
        if parsed.get(dest, _UNSET) is not _UNSET:
            messages.append(f"{'/'.join(optionals[dest])}: {per_sample[dest]}" if dest in
                            per_sample else f"{'/'.join(optionals[dest])} is set by the "
                                            "pipeline, not by users")
    processes = parsed.get("processes", _UNSET)
    if processes is _UNSET:
        processes = None
    elif processes is None or processes < 1:
        messages.append(
            f"-p/--processes must be a positive integer, got {processes} "
            "(0 or a bare -p would mean all CPUs)"
        )
    elif processes > MAX_PROCESSES:
        messages.append(f"-p/--processes must be at most {MAX_PROCESSES}, got {processes} (it "
                        "becomes the task's CPU request, capped by max_cpus)")
    else:
        tokens = _drop_processes(tokens, optionals["processes"])
        if _parse(parser, dummies + tokens, preset) != {**parsed, "processes": _UNSET}:
            messages.append("write -p/--processes as a separate option, e.g. '-p 4'")
    if messages:
        return None, [Problem(field, m) for m in messages]
    values = {d: parsed[d] for d in optionals if d in parsed and (
        d not in preset or (d in PER_SAMPLE_FACTS or d in sizes) and parsed[d] is not _UNSET)}
    return CheckedOptions(field, substep, shlex.join(tokens), processes, values), []


def _sex_warnings(checked: dict[str, CheckedOptions]) -> list[Problem]:
    """Warn when -y or --diploid-parx-genome differ among the substeps that accept them."""
    warnings = []
    for dest, label in SEX_OPTIONS.items():
        have = {f: c.values[dest] for f, c in checked.items() if dest in c.values}
        if len(set(have.values())) < 2:
            continue
        setters = [f for f, v in have.items() if v not in (None, False)]
        unset = ", ".join(f for f in have if f not in setters)
        if dest == "male_reference":
            message = (
                f"{label} is set in {', '.join(setters)} but not in {unset}; to be "
                f"consistent add -y to {unset} too (or remove it everywhere)"
            )
        else:
            shown = ", ".join(f"{f}={'unset' if v is None else v}" for f, v in have.items())
            message = f"{label} differs ({shown}); give the same value in {', '.join(have)}"
        warnings.append(Problem(setters[0], message, "warning"))
    return warnings


def _per_sample_warnings(checked: dict[str, CheckedOptions]) -> list[Problem]:
    """Warn of call's options that set a fact a sample may give itself (PER_SAMPLE_FACTS)."""
    call = checked.get("call_conf")
    return [Problem("call_conf", f"{flags} is the cohort's default: a sample's own {fact} "
                                 f"goes in samples[].{fact} or the samplesheet's {fact} "
                                 "column, and overrides it for that sample", "warning")
            for dest, (flags, fact) in PER_SAMPLE_FACTS.items()
            if call is not None and call.substep == "call" and dest in call.values]


def check_all(request: dict, cache=None) -> tuple[dict[str, CheckedOptions], list[Problem]]:
    """Check all ten ``*_conf`` fields (missing = "") plus the cross-substep sex settings;
    `cache` (`get(field, text)`, `put(text, checked)`, `save()`) gives and keeps the parsers'
    earlier verdicts."""
    checked: dict[str, CheckedOptions] = {}
    problems: list[Problem] = []
    for field in SUBSTEP_OF_FIELD:
        text = request.get(field)
        if text is None:
            text = ""
        if not isinstance(text, str):
            problems.append(Problem(field, f"expected a string, got {type(text).__name__}"))
            continue
        options = cache.get(field, text) if cache else None
        if options is None:
            options, found = check_options(field, text)
            problems += found
            if options and cache:
                cache.put(text, options)
        if options:
            checked[field] = options
    if cache:
        cache.save()
    return checked, problems + _sex_warnings(checked) + _per_sample_warnings(checked)
