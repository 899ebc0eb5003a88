"""The request as the validation parses it once: what every later step reads."""

import json
from pathlib import Path

from cnvkit_nf.contract.model import Sample
from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.request import validate_file, validate_request, validate_text

SEED_FILE = Path(__file__).resolve().parents[1] / "data" / "seed_request.json"
SEED = json.loads(SEED_FILE.read_text())


def test_the_seed_request_parsed():
    validation = validate_file(SEED_FILE)
    request = validation.request
    assert validation.ok and request.raw == SEED
    assert request.samples == (
        Sample("Son_S2_ALL", "experimental", parse_location(SEED["experimental_inputs"][0]),
               "experimental_inputs[0]"),
        Sample("Father_S5_ALL", "control", parse_location(SEED["control_inputs"][0]),
               "control_inputs[0]"),
        Sample("Mather_S1_ALL", "control", parse_location(SEED["control_inputs"][1]),
               "control_inputs[1]"))
    assert [s.id for s in request.of_role("control")] == ["Father_S5_ALL", "Mather_S1_ALL"]
    assert (request.ref.bucket, request.ref.key) == ("genes", "cnvkit/hg38.filtered.fa")
    assert request.output_dir.raw == SEED["output_dir"] and request.reference_cnn is None
    assert (request.has_annotate, request.reference_only) == (False, False)
    assert request.options["coverage_conf"].processes == 5


def test_inputs_are_the_files_the_job_reads_in_the_requests_order():
    unused = validate_request(SEED).request
    fields = ["ref", "bed", "experimental_inputs[0]", "control_inputs[0]", "control_inputs[1]"]
    assert [field for field, _ in unused.inputs()] == fields
    assert [field for field, _ in unused.paths()] == ["output_dir", "ref", "bed",
                                                      "annotation_file", *fields[2:]]
    used = validate_request({**SEED, "has_annotate": True}).request
    assert [field for field, _ in used.inputs()] == ["ref", "bed", "annotation_file",
                                                     *fields[2:]]


def test_the_raw_request_is_kept_as_it_came():
    """Job records keep it and the API echoes it: its JSON is the JSON that came."""
    text = json.dumps({**SEED, "control_inputs": [f"/d/C{n}.bam" for n in range(600)]})
    assert json.dumps(validate_text(text).request.raw) == text


def test_a_refused_request_is_parsed_as_far_as_it_goes():
    validation = validate_request({**SEED, "ref": "ftp://x/y.fa", "bed": 7,
                                   "experimental_inputs": ["a b.bam", "s3a://genes/x*.bam"]})
    assert not validation.ok
    request = validation.request
    assert (request.ref, request.bed) == (None, None)  # the validation says why
    assert request.samples[0] == Sample(None, "experimental", parse_location("a b.bam"),
                                        "experimental_inputs[0]")  # a name that breaks the rule
    assert [s.field for s in request.samples] == ["experimental_inputs[0]", "control_inputs[0]",
                                                  "control_inputs[1]"]
    assert validate_text("[1]").request is None
