"""What a valid CNVkit job request is: the JSON schema (with its rules across fields) and the
rules of input files the schema cannot state (static). A request's samples come as its two
lists, as `samples` rows, or as a samplesheet's rows (its text read by the caller); each way
gives the same model, and every problem names the field, or the sheet's line and column."""

import difflib
import functools
import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from cnvkit_nf.contract import confs, paths, samplesheet
from cnvkit_nf.contract.model import (
    EXCLUDE_FIELD,
    GENES_FIELD,
    INPUT_FIELDS,
    PATH_FIELDS,
    ROLES,
    Request,
    Sample,
    Way,
)
from cnvkit_nf.contract.problems import Problem, errors
from cnvkit_nf.pipeline_files import SCHEMA, load_bin

SCHEMA_PATH = SCHEMA / "cnvkit_request.schema.json"
MAX_REQUEST_BYTES = 16 << 20  # a request file larger than this is not read
MAX_DEPTH = 32  # a request nests 2 levels; anything deeper than this is refused unread
MAX_NAMED = 20  # unknown or repeated field names listed one by one; the rest are counted
# The rules across sample rows, shared with the pipeline's input check: a sample's name is its
# id, else its BAM's file name up to the first '.', of SAMPLE_NAME_CHARS (nextflow_schema.json's
# input pattern, made from them, captures the same name for main.nf).
sample_rows = load_bin("sample_rows")
SAMPLE_NAME_CHARS = sample_rows.SAMPLE_NAME_CHARS
sample_name = sample_rows.sample_name
# Reads come as BAM, or as CRAM read with the request's FASTA (beyond the seed's "BAM").
ALIGNMENT_SUFFIXES = (".bam", ".cram")
FILE_NAME_CHARS = "A-Za-z0-9_.+-"
_SAFE_NAME = re.compile(f"[{SAMPLE_NAME_CHARS}]+")
ROW_KEYS = ("bam", "vcf")  # a row's keys that name files
# File names reach the pipeline's task scripts (files are staged under their own name), so an
# input's file name is limited to characters no shell treats specially.
_SAFE_FILE_NAME = re.compile(f"[{FILE_NAME_CHARS}]+")
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


@dataclass
class Validation:
    """All problems found in a request, and the request as far as it parses (None when it is
    not a JSON object)."""

    problems: list[Problem] = field(default_factory=list)
    request: Request | None = None

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings are fine)."""
        return not errors(self.problems)


@functools.cache
def load_schema() -> dict[str, Any]:
    """The request's JSON schema (shared; do not modify)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


@dataclass(frozen=True)
class _Row:
    """A sample as the request gives it: its values (keys as a samples row's) and where the
    request names it (`label`: "samples[2]", "samplesheet line 4", "control_inputs[0]")."""

    values: dict[str, Any]
    label: str
    way: Way

    def where(self, key: str) -> str:
        """Where the request names one of its values: "samples[2].vcf", "samplesheet line 4,
        column vcf"; a list's item names only its BAM."""
        if self.way == "samples":
            return f"{self.label}.{key}"
        return f"{self.label}, column {samplesheet.column_of(key)}" \
            if self.way == "samplesheet" else self.label


def validate_request(data: object, cache=None, sheet: str | None = None) -> Validation:
    """Check a parsed request and report every problem found, without touching any file
    (`cache`: see `confs.check_all`). `sheet` is the text of the request's samplesheet, read
    by the caller; without it a request with a samplesheet is checked without its rows (and
    its model has no samples: it cannot be run)."""
    if not isinstance(data, dict):
        return Validation(_schema_problems(data, set()))
    request, data = data, _input_lists_cut(data)
    way, rows, problems = _rows(data, sheet)
    entries = _path_entries(data, rows)
    parsed: dict[str, paths.Location] = {}
    path_problems = []
    for where, text in entries:
        try:
            parsed[where] = paths.parse_location(text)
        except ValueError as exc:
            path_problems.append(Problem(where, str(exc)))
    unparsed = {p.field for p in path_problems}
    path_problems += [
        Problem(where, f"file name {text.rpartition('/')[2]!r} may only contain letters, "
                       "digits and _ . + -; rename the file")
        for where, text in entries
        if where != "output_dir" and where not in unparsed
        and not _SAFE_FILE_NAME.fullmatch(text.rpartition("/")[2])
    ]
    bad = {p.field for p in path_problems}
    problems = _schema_problems(data, bad) + problems + _sheet_row_problems(rows, bad) \
        + path_problems
    problems += _sample_problems(data, way, rows, bad)
    if "annotation_file" in data and data.get("has_annotate") is not True:
        problems.append(
            Problem("annotation_file", "ignored because has_annotate is not true", "warning")
        )
    method = data.get("method", "hybrid")
    if method in ("amplicon", "wgs") and data.get("antitarget_conf"):
        problems.append(Problem("antitarget_conf", f"ignored with method {method}: a "
                                f"{method} job makes no antitargets", "warning"))
    # Only strings the schema allows are parsed as options (it reports the others): argparse's
    # time grows faster than the length of what it parses.
    longest = load_schema()["$defs"]["options"]["maxLength"]
    options, option_problems = confs.check_all(
        {k: v for k, v in data.items() if isinstance(v, str) and len(v) <= longest}, cache)
    return Validation(sorted(dict.fromkeys(problems + option_problems), key=_sheet_line),
                      _parsed(request, parsed, options, way, rows, sheet))


def _sheet_line(problem: Problem) -> int:
    """A samplesheet line's problems in the sheet's order, after the request's (a stable
    sort keeps the order found within a line)."""
    found = re.match(rf"{samplesheet.FIELD} line (\d+)", problem.field)
    return int(found.group(1)) if found else 0


def _rows(data: dict[str, Any], sheet: str | None) -> tuple[Way, list[_Row], list[Problem]]:
    """How the request gives its samples, each as a row, and the problems of a sheet's
    text."""
    if "samples" in data:
        items = data["samples"] if isinstance(data["samples"], list) else []
        return "samples", [_Row(item, f"samples[{i}]", "samples")
                           for i, item in enumerate(items) if isinstance(item, dict)], []
    if "samplesheet" in data:
        name = data["samplesheet"]
        if sheet is None or not isinstance(name, str):
            return "samplesheet", [], []
        row_schema = load_schema()["$defs"]["sample"]
        lines, problems = samplesheet.read_rows(
            sheet, name, row_schema, load_schema()["properties"]["samples"]["maxItems"])
        return "samplesheet", [_Row(values, samplesheet.where(line), "samplesheet")
                               for line, values in lines], problems
    return "lists", [_Row({"bam": item, "role": role}, f"{field}[{i}]", "lists")
                     for field, role in ROLES.items() if isinstance(data.get(field), list)
                     for i, item in enumerate(data[field])], []


def _sheet_row_problems(rows: list[_Row], bad: set[str]) -> list[Problem]:
    """What a samplesheet's rows break of the request schema's row rules (a samples row's
    are the request's own schema problems); as `_schema_problems`, a refused path's format
    is left to the path's own problem."""
    return [Problem(row.where(p.field) if p.field else row.label, p.message)
            for row in rows if row.way == "samplesheet"
            for err in _row_validator().iter_errors(row.values)
            if not (err.validator in ("pattern", "minLength") and "errorMessage" not in err.schema
                    and row.where(_where(err.absolute_path)) in bad)
            for p in _describe(err, _where(err.absolute_path))]


@functools.cache
def _row_validator() -> Draft202012Validator:
    """The request schema's rules of one sample row (a samplesheet's rows are checked apart)."""
    return Draft202012Validator({"$defs": load_schema()["$defs"], "$ref": "#/$defs/sample"})


def _sample_problems(data: dict[str, Any], way: Way, rows: list[_Row],
                     bad: set[str]) -> list[Problem]:
    """BAM suffixes, and the rules across rows (`bin/sample_rows.py`): of the lists only
    theirs (the schema says which roles a job's kind allows them), of rows all of them. A
    BAM whose path is refused is left out of them."""
    problems = [Problem(row.where("bam"), "must be a BAM or CRAM file ending in .bam or .cram")
                for row in rows if isinstance(row.values.get("bam"), str)
                and row.where("bam") not in bad
                and not row.values["bam"].endswith(ALIGNMENT_SUFFIXES)]
    values = [{**row.values, "bam": None} if row.where("bam") in bad
              or not isinstance(row.values.get("bam"), str) else row.values for row in rows]
    labels = [row.label for row in rows]
    if way == "lists":
        found = sample_rows.cross_row_problems(values, labels)
    elif way == "samplesheet" and not rows:
        return problems  # not read, or nothing readable in it (said already)
    else:
        mode = data.get("reference_mode")
        found = sample_rows.row_problems(
            values, labels, reference_mode=mode if isinstance(mode, str) else "pooled",
            reference_only=data.get("reference_only") is True,
            reference_cnn="reference_cnn" in data)
    return problems + [Problem(rows[i].where(key) if i is not None else way, message)
                       for i, key, message in found]


def _parsed(raw: dict[str, Any], parsed: dict[str, paths.Location],
            options: dict[str, confs.CheckedOptions], way: Way, rows: list[_Row],
            sheet: str | None) -> Request:
    """The request `raw` with the locations its paths parsed into, by field, and its rows as
    samples (a row whose BAM or role is refused is left out; so are facts the schema
    refuses)."""
    mode, method = raw.get("reference_mode"), raw.get("method")
    excluded = raw.get(EXCLUDE_FIELD) if isinstance(raw.get(EXCLUDE_FIELD), list) else []
    genes = raw.get(GENES_FIELD) if isinstance(raw.get(GENES_FIELD), list) else []
    symbol = load_schema()["properties"][GENES_FIELD]["items"]
    return Request(raw, **{name: parsed.get(name) for name in PATH_FIELDS},
                   samples=tuple(filter(None, (_sample(row, parsed) for row in rows))),
                   has_annotate=raw.get("has_annotate") is True,
                   reference_only=raw.get("reference_only") is True, options=options, way=way,
                   samplesheet=parsed.get("samplesheet"),
                   sheet_text=sheet if way == "samplesheet" else None,
                   reference_mode=mode if mode in _enum("reference_mode") else "pooled",
                   pool_matched_normals=raw.get("pool_matched_normals") is not False,
                   method=method if method in _enum("method") else "hybrid",
                   autobin=raw["autobin"] if isinstance(raw.get("autobin"), bool) else None,
                   access_exclude=tuple(parsed.get(f"{EXCLUDE_FIELD}[{i}]")
                                        for i in range(len(excluded))),
                   genes_of_interest=tuple(dict.fromkeys(
                       gene for gene in genes if isinstance(gene, str) and _fits(gene, symbol))))


def _sample(row: _Row, parsed: dict[str, paths.Location]) -> Sample | None:
    """A row as the model's sample, or None when its BAM or its role is refused."""
    values = row.values
    location, role = parsed.get(row.where("bam")), values.get("role")
    if location is None or role not in ROLES.values():
        return None
    try:
        name = sample_rows.sample_id(values)
    except ValueError:  # the validation reports it
        name = None
    facts = load_schema()["$defs"]["sample"]["properties"]

    def given(key: str, kinds: tuple[type, ...]) -> Any:
        value = values.get(key)
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        return value if ok and (not isinstance(value, str) or _fits(value, facts[key])) \
            else None

    vcf_field = row.where("vcf") if "vcf" in values else None
    return Sample(name if isinstance(name, str) and _SAFE_NAME.fullmatch(name) else None,
                  role, location, row.where("bam"), sex=given("sex", (str,)),
                  purity=given("purity", (int, float)), ploidy=given("ploidy", (int,)),
                  vcf=parsed.get(vcf_field) if vcf_field else None, vcf_field=vcf_field,
                  vcf_sample=given("vcf_sample", (str,)), normal=given("normal", (str,)))


def _fits(value: str, rule: dict[str, Any]) -> bool:
    """Whether a string meets a fact's enum or pattern (the schema reports it otherwise)."""
    return value in rule["enum"] if "enum" in rule else bool(re.search(rule["pattern"], value))


def _enum(name: str) -> list[Any]:
    return load_schema()["properties"][name]["enum"]


def _input_lists_cut(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each input list cut one item past the schema's maxItems: the schema still
    reports it too long, and checking the items beyond (a 1 MiB body holds 300,000) would
    only cost time."""
    fields = load_schema()["properties"]
    return {k: v[:fields[k]["maxItems"] + 1]
            if k in (*INPUT_FIELDS, "samples", EXCLUDE_FIELD, GENES_FIELD)
            and isinstance(v, list) else v
            for k, v in data.items()}




def validate_file(path: str | Path, cache=None, sheet: str | None = None) -> Validation:
    """Read and validate a JSON request file; a file that cannot be read as one (not a regular
    file, too large, not UTF-8, invalid JSON) becomes a problem."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
    except OSError as exc:
        return Validation([Problem("", f"cannot read {path}: {exc.strerror or exc}")])
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return Validation([Problem("", f"{path} is not a regular file")])
        data = handle.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        return Validation([Problem("", f"{path} is larger than {MAX_REQUEST_BYTES} bytes; a "
                                       "request is a small JSON object")])
    try:
        return validate_text(data.decode("utf-8"), cache, sheet)
    except UnicodeDecodeError:
        return Validation([Problem("", f"{path} is not UTF-8 text")])


def validate_text(text: str, cache=None, sheet: str | None = None) -> Validation:
    """Parse and validate a JSON request; invalid JSON, repeated field names and nesting
    deeper than a request has are problems."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_integer)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return Validation([Problem("", message)])
    except ValueError as exc:
        return Validation([Problem("", str(exc))])
    except RecursionError:  # nested too deeply for the parser itself
        return _too_deep()
    if _depth(data) > MAX_DEPTH:
        return _too_deep()
    return validate_request(data, cache, sheet)


def _integer(text: str) -> int:
    """A JSON integer; one of more digits than a count could need is refused unparsed."""
    if len(text) > 30:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits; a request is one object "
                         "of strings, booleans and lists of strings")
    return int(text)


def _too_deep() -> Validation:
    return Validation([Problem("", f"the JSON is nested more than {MAX_DEPTH} levels deep; a "
                                   "request is one object of strings, booleans and lists of "
                                   "strings")])


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a string has depth 0), up to
    MAX_DEPTH + 1; a level at a time, in comprehensions (a 1 MiB body holds 350,000 lists)."""
    depth, level = 0, [value]
    while depth <= MAX_DEPTH:
        level = [item for item in level if isinstance(item, dict | list)]
        if not level:
            break
        depth += 1
        level = [child for item in level
                 for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object hook that refuses repeated field names (the first MAX_NAMED named)."""
    fields = dict(pairs)
    if len(fields) < len(pairs):
        counts = Counter(k for k, _ in pairs)
        repeated = sorted(k for k, n in counts.items() if n > 1)
        more = f" and {len(repeated) - MAX_NAMED} more" if len(repeated) > MAX_NAMED else ""
        raise ValueError(f"field(s) given more than once: {', '.join(repeated[:MAX_NAMED])}"
                         + more)
    return fields


def _where(path: Iterable[str | int]) -> str:
    """A JSON-path-like location: ``control_inputs[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _schema_problems(data: object, bad_paths: set[str]) -> list[Problem]:
    """Every JSON-schema error as a Problem; path-format errors at ``bad_paths`` are skipped."""
    problems = []
    for err in _validator().iter_errors(data):
        where = _where(err.absolute_path)
        if (err.validator in ("pattern", "minLength") and where in bad_paths
                and "errorMessage" not in err.schema):
            continue  # the path's format: paths.parse_location said more precisely what is wrong
        problems += _describe(err, where)
    return problems


def _describe(err: ValidationError, where: str) -> list[Problem]:
    """Human reasons for one schema error: the `errorMessage` of the rule broken, else one
    made from the JSON-schema keyword."""
    value, instance = err.validator_value, err.instance
    prefix = f"{where}." if where else ""
    if err.validator == "additionalProperties":
        known = list(err.schema["properties"])
        unknown = [name for name in instance if name not in known]
        out = []
        for name in unknown[:MAX_NAMED]:  # a hint costs a comparison with every known name
            # a row's id is a samplesheet's `sample` column
            close = ["id"] if name == samplesheet.ID_COLUMN and "id" in known else \
                difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(Problem(prefix + name, f"unknown field {name!r}{hint}"))
        if len(unknown) > MAX_NAMED:
            out.append(Problem(where, f"{len(unknown) - MAX_NAMED} more unknown fields after "
                                      f"these {MAX_NAMED}; the known fields are "
                                      f"{', '.join(known)}"))
        return out
    reason = err.schema.get("errorMessage")
    if err.validator == "required":
        return [Problem(prefix + name, reason or "missing required field")
                for name in value if name not in instance]
    if err.validator == "uniqueItems":
        return [Problem(where, reason or f"lists {_repeated(instance)} more than once")]
    listed = {EXCLUDE_FIELD: "BED files", GENES_FIELD: "genes"}
    reasons = {
        "type": f"expected {value}, got {_json_type(instance)}",
        "maxItems": f"must list at most {value} {listed.get(where, 'BAM files')}",
        "minLength": "must not be empty",
        "maxLength": f"must be at most {value} characters long",
        "pattern": "must be a local path or an s3a://, s3:// or obs:// URI with a bucket and key",
    }
    return [Problem(where, reason or reasons.get(str(err.validator), err.message))]


def _repeated(items: list) -> str:
    """The items a list repeats, as JSON, comma-separated."""
    counts = Counter(json.dumps(item, sort_keys=True) for item in items)
    return ", ".join(text for text, n in counts.items() if n > 1)


def _path_entries(data: dict[str, Any], rows: list[_Row]) -> list[tuple[str, str]]:
    """(location, text) of every path in the request that is a string: its fields' (each
    exclusion BED's too), then each sample's BAM, then their VCFs."""
    entries = [(f, data[f]) for f in (*PATH_FIELDS, "samplesheet") if isinstance(data.get(f), str)]
    excluded = data.get(EXCLUDE_FIELD)
    entries += [(f"{EXCLUDE_FIELD}[{i}]", text) for i, text in
                enumerate(excluded if isinstance(excluded, list) else []) if isinstance(text, str)]
    entries += [(row.where(key), row.values[key]) for key in ROW_KEYS for row in rows
                if isinstance(row.values.get(key), str)]
    return entries
