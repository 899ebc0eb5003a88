"""The request contract: JSON schema plus cross-field rules."""

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cnvkit_nf.contract.confs import SUBSTEP_OF_FIELD
from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.problems import Problem, errors, format_problem
from cnvkit_nf.contract.request import (
    load_schema,
    sample_name,
    validate_file,
    validate_request,
    validate_text,
)

SEED_FILE = Path(__file__).resolve().parents[1] / "data" / "seed_request.json"
SEED = json.loads(SEED_FILE.read_text())


def request(**changes: object) -> dict:
    """The seed request with fields replaced (a value of None removes the field)."""
    data = copy.deepcopy(SEED)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def error_map(data: object) -> dict[str, str]:
    return {p.field: p.message for p in errors(validate_request(data).problems)}


def test_schema_is_valid_and_has_the_16_seed_fields_and_12_extensions() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert len(schema["properties"]) == 28
    assert {"reference_cnn", "reference_only", "samples", "samplesheet", "reference_mode",
            "pool_matched_normals", "method", "autobin", "access_conf", "access_exclude",
            "access_bed", "genes_of_interest"} <= set(schema["properties"])
    # the seed's arrays are required unless samples or samplesheet gives the BAMs (allOf), the
    # bed unless method is wgs
    assert set(schema["required"]) == {"output_dir", "ref"}
    assert error_map(request(bed=None)) == {
        "bed": "required unless method is wgs: hybrid capture and amplicon jobs bin the "
               "targets of the BED"}
    assert error_map(request(experimental_inputs=None, control_inputs=None)) == {
        name: "required unless samples or samplesheet gives the BAM files"
        for name in ("experimental_inputs", "control_inputs")}
    assert set(SUBSTEP_OF_FIELD) <= set(schema["properties"])
    for prop in schema["properties"].values():
        assert prop["title"] and prop["description"]


def test_seed_example_is_valid_with_two_warnings() -> None:
    result = validate_file(SEED_FILE)
    assert result.ok
    assert all(p.severity == "warning" for p in result.problems)
    by_field = {p.field: p.message for p in result.problems}
    assert set(by_field) == {"sex_conf", "annotation_file"}
    assert "ignored" in by_field["annotation_file"]
    assert "-y" in by_field["sex_conf"] and "reference_conf" in by_field["sex_conf"]
    assert result.request.options["coverage_conf"].args == "-q 10"
    assert result.request.options["coverage_conf"].processes == 5
    assert set(result.request.options) == set(SUBSTEP_OF_FIELD)


def test_minimal_request_with_empty_controls() -> None:
    minimal = {k: SEED[k] for k in ("experimental_inputs", "output_dir", "ref", "bed")}
    result = validate_request({**minimal, "control_inputs": []})
    assert result.ok and result.problems == []


@pytest.mark.parametrize(
    "missing", ["experimental_inputs", "control_inputs", "output_dir", "ref", "bed"]
)
def test_missing_required_field(missing: str) -> None:
    reason = ("required unless samples or samplesheet gives the BAM files"
              if missing.endswith("_inputs") else
              "required unless method is wgs: hybrid capture and amplicon jobs bin the targets "
              "of the BED" if missing == "bed" else "missing required field")
    assert error_map(request(**{missing: None})) == {missing: reason}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("experimental_inputs", "s3a://genes/a.bam", "expected array, got string"),
        ("has_annotate", "false", "expected boolean, got string"),
        ("ref", 5, "expected string, got integer"),
        ("call_conf", ["-y"], "expected string, got array"),
    ],
)
def test_wrong_types(field: str, value: object, expected: str) -> None:
    assert error_map(request(**{field: value})) == {field: expected}


def test_wrong_item_type() -> None:
    errs = error_map(request(control_inputs=["s3a://genes/a.bam", 7]))
    assert errs == {"control_inputs[1]": "expected string, got integer"}


def test_not_an_object() -> None:
    assert error_map(["x"]) == {"": "expected object, got array"}


def test_unknown_field_with_suggestion() -> None:
    data = request(experimental_inputs=None, expermental_inputs=SEED["experimental_inputs"])
    errs = error_map(data)
    assert errs["expermental_inputs"] == (
        "unknown field 'expermental_inputs' (did you mean 'experimental_inputs'?)"
    )
    assert errs["experimental_inputs"] == \
        "required unless samples or samplesheet gives the BAM files"


def test_empty_experimental_inputs() -> None:
    assert "at least 1" in error_map(request(experimental_inputs=[]))["experimental_inputs"]


def test_annotation_required_when_has_annotate() -> None:
    errs = error_map(request(has_annotate=True, annotation_file=None))
    assert errs == {"annotation_file": "required when has_annotate is true"}
    result = validate_request(request(has_annotate=True))
    assert result.ok and all(p.field != "annotation_file" for p in result.problems)


def test_duplicate_sample_names() -> None:
    data = request(control_inputs=["s3a://genes/other/Son_S2_ALL.bam", "s3a://genes/F.bam"])
    errs = error_map(data)
    message = errs["control_inputs[0]"]
    assert "Son_S2_ALL" in message and "experimental_inputs[0]" in message


def test_same_bam_twice() -> None:
    bam = SEED["control_inputs"][0]
    errs = error_map(request(control_inputs=[bam, bam]))
    assert errs == {"control_inputs[1]": "the same BAM is already listed as control_inputs[0]"}


def test_inputs_must_be_bam_or_cram_with_safe_names() -> None:
    errs = error_map(request(control_inputs=["s3a://genes/F.sam", "s3a://genes/a b.bam",
                                             "s3a://genes/M.sort.cram"]))
    assert errs["control_inputs[0]"] == "must be a BAM or CRAM file ending in .bam or .cram"
    assert "letters, digits" in errs["control_inputs[1]"]
    assert "control_inputs[2]" not in errs


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("http://genes/x/Son.bam", "unsupported scheme http://"),
        ("ftp://genes/x/Son.bam", "unsupported scheme ftp://"),
        ("s3a://genes", "no object key"),
        ("s3a://genes/", "no object key"),
        ("s3a://Genes/x/Son.bam", "invalid bucket name 'Genes'"),
        ("s3://ab/Son.bam", "invalid bucket name 'ab'"),
        ("obs://10.0.0.1/Son.bam", "invalid bucket name '10.0.0.1'"),
        ("s3a://-genes/Son.bam", "invalid bucket name"),
        ("Son\n.bam", "line-break"),
        ("", "empty path"),
    ],
)
def test_bad_paths(path: str, expected: str) -> None:
    errs = error_map(request(experimental_inputs=[path]))
    assert list(errs) == ["experimental_inputs[0]"]
    assert expected in errs["experimental_inputs[0]"]


@pytest.mark.parametrize("field", ["output_dir", "ref", "bed", "annotation_file"])
def test_bad_path_fields(field: str) -> None:
    errs = error_map(request(**{field: "http://example.org/x"}))
    assert errs == {field: "unsupported scheme http:// (use a local path or s3a://, s3://, obs://)"}


@pytest.mark.parametrize(
    "path",
    ["/data/Son.bam", "rel/dir/Son.bam", "Son.bam", "s3://genes/Son.bam", "obs://b-1.x/k/Son.bam"],
)
def test_good_paths(path: str) -> None:
    assert validate_request(request(experimental_inputs=[path])).ok


def test_all_problems_reported_at_once() -> None:
    data = request(
        ref=None,
        bedd=SEED["bed"],
        control_inputs=["ftp://x/F.bam"],
        coverage_conf="; rm -rf /",
        segment_conf="-p 0",
    )
    errs = error_map(data)
    assert {"ref", "bedd", "control_inputs[0]", "coverage_conf", "segment_conf"} <= set(errs)


def test_hostile_option_reported_with_field() -> None:
    result = validate_request(request(coverage_conf="--outp=/etc/x"))
    assert not result.ok
    assert "coverage_conf" not in result.request.options
    (problem,) = errors(result.problems)
    assert (
        format_problem(problem) == "coverage_conf: -o/--output is set by the pipeline, not by users"
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("s3a://genes/cnvkit/Son_S2_ALL.sort.mkdup.bam", "Son_S2_ALL"),
        ("/data/Father-1.bam", "Father-1"),
        ("Mother.bam", "Mother"),
    ],
)
def test_sample_name(path: str, name: str) -> None:
    assert sample_name(path) == name


@pytest.mark.parametrize("path", ["s3a://genes/.bam", "dir/a b.bam", "x/Söhn.bam"])
def test_unsafe_sample_name(path: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        sample_name(path)


def test_validate_file_problems(tmp_path: Path) -> None:
    missing = validate_file(tmp_path / "nope.json")
    assert not missing.ok and "cannot read" in missing.problems[0].message
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "ref": "x",\n  "bed": \n}')
    (problem,) = validate_file(broken).problems
    assert problem.message.startswith("invalid JSON at line 4, column 1")
    twice = tmp_path / "twice.json"
    twice.write_text('{"ref": "a.fa", "ref": "b.fa"}')
    assert "given more than once: ref" in validate_file(twice).problems[0].message


def test_location_parts() -> None:
    loc = parse_location("s3a://genes/cnvkit/output")
    assert (loc.scheme, loc.bucket, loc.key, loc.is_remote) == (
        "s3a",
        "genes",
        "cnvkit/output",
        True,
    )
    assert loc.name == "output" and loc.as_folder().raw == "s3a://genes/cnvkit/output/"
    local = parse_location("data/Son.bam")
    assert not local.is_remote and local.local_path() == Path("data/Son.bam")
    with pytest.raises(ValueError):
        loc.local_path()


def test_format_problem() -> None:
    assert format_problem(Problem("ref", "bad")) == "ref: bad"
    assert format_problem(Problem("ref", "odd", "warning")) == "warning: ref: odd"


@pytest.mark.parametrize(("name", "reason"), [
    ("x$(touch pwned).bam", "path contains $: Nextflow would expand"),
    ("a b.bam", "may only contain letters"), ("x;id.bam", "may only contain letters"),
    ("x`id`.bam", "may only contain letters")])
def test_input_file_names_are_shell_inert(name: str, reason: str) -> None:
    bad = error_map(request(experimental_inputs=[f"/data/{name}"], bed="/data/t b.bed"))
    assert reason in bad["experimental_inputs[0]"]
    assert "may only contain letters" in bad["bed"]


@pytest.mark.parametrize("path", ["/data/${projectDir}/S.bam", "/data/$x/S.bam",
                                  "/data/{a,b}/S.bam", "/data/*/S.bam", "/data/S?.bam",
                                  "/data/[ab]/S.bam", "s3a://genes/${launchDir}/S.bam"])
def test_paths_nextflow_would_expand_are_refused(path: str) -> None:
    """Nextflow expands ${...} in a params file and reads * ? [ ] { } in file() as a pattern,
    so the file it opens would not be the one that was checked."""
    message = error_map(request(experimental_inputs=[path]))["experimental_inputs[0]"]
    assert message.startswith("path contains ") and "Nextflow would expand" in message


def test_a_lone_surrogate_is_a_problem_not_a_crash() -> None:
    bad = error_map(request(ref="/data/\ud800.fa", output_dir="/out/\udfff"))
    assert "lone surrogate" in bad["ref"] and "lone surrogate" in bad["output_dir"]


def test_nesting_is_bounded() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"bed": ' * 40 + '"x"' + "}" * 40):
        [problem] = validate_text(text).problems
        assert problem.message.startswith("the JSON is nested more than 32 levels deep")
    assert validate_text(json.dumps(SEED)).ok


BODY_LIMIT = 1 << 20  # the job service's max_body_bytes


def _fill(item: str, head: str = "{", tail: str = "}") -> str:
    """A JSON text of as many `item`s ({} -> a number) as fit in the service's body limit."""
    count = (BODY_LIMIT - len(head) - len(tail)) // (len(item.format(0)) + 1)
    return head + ",".join(item.format(i) for i in range(count)) + tail


def _request_with(field: str, item: str) -> str:
    return _fill(item, json.dumps(request(**{field: None}))[:-1] + f', "{field}": [', "]}")


HOSTILE_REQUESTS = {  # the costliest bodies of their kind within the limit
    "unknown fields": _fill('"f{:07d}": ""'),
    "unknown fields like known ones": _fill('"target_con{:07d}": 1'),
    "a field repeated": _fill('"a{:07d}": 1, "a{:07d}": 1'.replace("{:07d}", "{0:07d}")),
    "empty paths": _request_with("experimental_inputs", '""'),
    "paths with a glob": _request_with("control_inputs", '"*"'),
    "numbers for paths": _request_with("experimental_inputs", "1"),
    "objects for paths": _request_with("experimental_inputs", "{{}}"),
    "one BAM again and again": _request_with("control_inputs", '"/d/a.bam"'),
    "an option string of many options": json.dumps(request(coverage_conf="-x " * 300_000)),
    "lists in an unknown field": _fill("[[]]", '{"x": [', "]}"),
}


def best_time(call: Callable[[], object], within: float = 1) -> float:
    """Seconds `call` takes: the least of up to three tries, so that another process on the
    CPU does not fail a test; a try under `within`, or over thrice that, ends it."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
        if not within <= best <= 3 * within:
            break
    return best


@pytest.mark.parametrize("text", [pytest.param(text, id=name)
                                  for name, text in HOSTILE_REQUESTS.items()])
def test_a_hostile_request_is_answered_in_well_under_a_second(text: str) -> None:
    """Each took from 5 s to minutes: problems that cost time in proportion to the square of
    the request's size (or argparse's worse), on a body the service accepts."""
    assert len(text.encode()) <= BODY_LIMIT
    validate_text(json.dumps(SEED))  # CNVkit's parsers are imported once, not timed here
    assert best_time(lambda: validate_text(text)) < 1
    result = validate_text(text)
    assert not result.ok
    assert len(result.problems) <= 510  # a list's first 501 items, not 300,000 of them


def test_unknown_fields_are_named_up_to_twenty_then_counted() -> None:
    data = request(**{f"extra_{n:03d}": 1 for n in range(30)}, segmnet_conf="")
    found = errors(validate_request(data).problems)
    named = [p for p in found if p.field.startswith(("extra_", "segmnet"))]
    assert [p.field for p in named] == [f"extra_{n:03d}" for n in range(20)]
    assert named[0].message == "unknown field 'extra_000'"
    (rest,) = [p for p in found if p.field == ""]
    assert rest.message.startswith("11 more unknown fields after these 20; the known fields "
                                   "are experimental_inputs, control_inputs,")
    hinted = error_map(request(segmnet_conf=""))["segmnet_conf"]
    assert hinted == "unknown field 'segmnet_conf' (did you mean 'segment_conf'?)"


def test_repeated_fields_are_named_up_to_twenty_then_counted() -> None:
    text = "{" + ", ".join(f'"f{n:02d}": 1, "f{n:02d}": 2' for n in range(25)) + "}"
    (problem,) = validate_text(text).problems
    assert problem.message == ("field(s) given more than once: "
                               + ", ".join(f"f{n:02d}" for n in range(20)) + " and 5 more")
