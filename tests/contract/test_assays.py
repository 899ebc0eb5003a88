"""The request contract of the assays (issue 25): method, autobin, access_conf, access_exclude,
access_bed; their rules in the request schema and the params schema main.nf enforces; the
bin-size plan of `bin/cnvkit_options.py`; the params a request becomes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cnvkit_nf.contract import confs
from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.pipeline_schema import TARGET, build, render
from cnvkit_nf.contract.problems import errors
from cnvkit_nf.contract.request import validate_request

SEED = json.loads((Path(__file__).resolve().parents[1] / "data" / "seed_request.json")
                  .read_text())
LOCAL = {"experimental_inputs": ["/data/T1.bam"], "control_inputs": ["/data/N1.bam"],
         "output_dir": "/data/out/", "ref": "/data/hg38.fa", "bed": "/data/kit.bed"}
EITHER = ("give either access_bed or access_conf/access_exclude: access_bed is a precomputed "
          "result of `cnvkit.py access`, which access_conf and access_exclude would shape")
AMPLICON = ("not used with method amplicon: an amplicon job bins its targets only, without "
            "accessible regions (leave it out, or choose method hybrid or wgs)")
BED_NEEDED = ("required unless method is wgs: hybrid capture and amplicon jobs bin the targets "
              "of the BED")


def request(**changes: object) -> dict:
    """A local request with fields replaced (None removes one)."""
    data = {**copy.deepcopy(LOCAL), **changes}
    return {k: v for k, v in data.items() if v is not None}


def problems(data: dict) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in errors(validate_request(data).problems)]


# --- the request schema's rules ----------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {},
    {"method": "hybrid", "autobin": True, "access_conf": "-s 10000",
     "access_exclude": ["/data/blacklist.bed", "s3://genes/enc/other.bed"]},
    {"method": "hybrid", "access_bed": "/data/access-5k.bed", "access_conf": "",
     "access_exclude": []},
    {"method": "amplicon", "autobin": False, "antitarget_conf": ""},
    {"method": "wgs", "bed": None},
    {"method": "wgs", "bed": None, "access_bed": "obs://genes/access.bed", "autobin": False},
    {"method": "wgs", "access_exclude": ["/data/blacklist.bed"], "target_conf": "-a 10000"},
])
def test_requests_of_each_assay_are_valid(changes):
    validation = validate_request(request(**changes))
    assert validation.ok, validation.problems
    model = validation.request
    assert model.method == changes.get("method", "hybrid")
    assert model.autobin == changes.get("autobin")
    assert [loc.raw for _, loc in model.inputs() if _.startswith("access")] == (
        ([changes["access_bed"]] if "access_bed" in changes else [])
        + changes.get("access_exclude", []))


def test_the_bed_is_required_unless_wgs():
    assert problems(request(bed=None)) == [("bed", BED_NEEDED)]
    assert problems(request(bed=None, method="amplicon")) == [("bed", BED_NEEDED)]
    assert problems(request(bed=None, method="wgs")) == []


def test_every_problem_of_the_access_fields_at_once():
    """amplicon with every access field, one of them with -x, one exclusion not a BED and one
    with a ${...}: each problem names its field, what is wrong and what is right."""
    found = problems(request(method="amplicon", access_bed="/data/access.bed",
                             access_conf="-x /data/bl.bed", access_exclude=[
                                 "/data/bl.txt", "/data/${HOME}/bl.bed"]))
    assert found == [
        ("access_exclude[0]", "must be a BED file ending in .bed"),
        ("access_conf", EITHER), ("access_exclude", EITHER),
        ("access_bed", AMPLICON), ("access_conf", AMPLICON), ("access_exclude", AMPLICON),
        ("access_exclude[1]", "path contains $ { }: Nextflow would expand ${...} or read the "
                              "path as a file pattern, not as the file named; rename the "
                              "folder or file"),
        ("access_conf", "-x/--exclude: exclusion BEDs go in access_exclude (a list of BED "
                        "files: as input files they are checked, confined to the allowed "
                        "roots and pinned), not in access_conf"),
    ]


def test_a_wgs_request_mixing_access_bed_and_access_options():
    found = problems(request(method="wgs", bed=None, access_bed="/data/a.bed",
                             access_conf="-s 10000", access_exclude=["/data/bl.bed"]))
    assert found == [("access_conf", EITHER), ("access_exclude", EITHER)]
    assert problems(request(access_bed="/data/a.bed", access_conf="", access_exclude=[])) == []


@pytest.mark.parametrize("changes, expected", [
    ({"method": "WGS"}, [("method", "must be hybrid, amplicon or wgs")]),
    ({"autobin": "yes"}, [("autobin", "expected boolean, got string")]),
    ({"access_exclude": "/data/bl.bed"}, [("access_exclude", "expected array, got string")]),
    ({"access_exclude": ["/data/bl.bed"] * 21},
     [("access_exclude", "must list at most 20 BED files")]),
    ({"access_bed": "/data/access.bed.gz"},
     [("access_bed", "must be a BED file ending in .bed")]),
    ({"access_bed": "ftp://host/access.bed"},
     [("access_bed", "unsupported scheme ftp:// (use a local path or s3a://, s3://, obs://)")]),
    ({"access_conf": "-s 10000 -o /tmp/x"},
     [("access_conf", "-o/--output is set by the pipeline, not by users")]),
])
def test_refused_values(changes, expected):
    assert problems(request(**changes)) == expected


def test_antitarget_conf_is_ignored_without_antitargets():
    result = validate_request(request(method="amplicon", antitarget_conf="-a 100000"))
    assert result.ok
    assert ("antitarget_conf", "ignored with method amplicon: a amplicon job makes no "
            "antitargets") in [(p.field, p.message) for p in result.problems]


# --- the bin-size plan (bin/cnvkit_options.py) -------------------------------------------------

def plan(method: str, autobin: bool | None, **confs_given: str) -> tuple:
    checked, found = confs.check_all(confs_given)
    assert not errors(found)
    staged = confs.stage_options(checked, method, autobin)
    return tuple((staged[f]["size"], staged[f]["size_from"], staged[f]["split"])
                 for f in ("target_conf", "antitarget_conf"))


@pytest.mark.parametrize("method, autobin, given, expected", [
    ("hybrid", None, {}, ((None, "cnvkit default", False), (None, "cnvkit default", False))),
    ("hybrid", True, {}, ((None, "autobin", True), (None, "autobin", False))),
    ("hybrid", True, {"antitarget_conf": "-a 150000"},  # the default's value, given: given
     ((None, "autobin", True), (150000, "antitarget_conf", False))),
    ("hybrid", False, {"target_conf": "--avg-size 267"},
     ((267, "target_conf", False), (None, "cnvkit default", False))),
    ("amplicon", None, {}, ((None, "cnvkit default", False), (None, "none", False))),
    ("amplicon", True, {}, ((None, "autobin", True), (None, "none", False))),
    ("wgs", None, {}, ((None, "autobin", True), (None, "none", False))),
    ("wgs", False, {}, ((5000, "wgs default", True), (None, "none", False))),
    ("wgs", None, {"target_conf": "-a 20000"}, ((20000, "target_conf", True),
                                                (None, "none", False))),
])
def test_the_bin_size_plan(method, autobin, given, expected):
    assert plan(method, autobin, **given) == expected


def test_access_conf_is_the_tenth_option_field():
    assert confs.SUBSTEP_OF_FIELD["access_conf"] == "access"
    checked, found = confs.check_options("access_conf", "-s 10000")
    assert found == [] and checked.args == "-s 10000"
    staged = confs.stage_options({"access_conf": checked})
    assert staged["access_conf"] == {"args": "-s 10000", "processes": None}
    assert len(staged) == 10
    assert set(staged["coverage_conf"]) == {"args", "processes"}


# --- the params ------------------------------------------------------------------------------

def test_a_seed_request_gets_hybrid_and_no_more():
    params = to_params(validate_request(request()).request)
    assert params["method"] == "hybrid"
    assert "autobin" not in params and "access_bed" not in params
    assert "access_exclude" not in params
    assert params["access_conf"] == ""
    assert params["checked_options"]["target_conf"] == {
        "args": "", "processes": None, "size": None, "size_from": "cnvkit default",
        "split": False, "autobin": False}


def test_params_of_the_new_fields():
    data = request(method="wgs", bed=None, autobin=False, access_conf="-s 10000",
                   access_exclude=["/data/bl.bed", "/data/more.bed"])
    params = to_params(validate_request(data).request)
    assert (params["method"], params["autobin"], params["access_conf"]) == (
        "wgs", False, "-s 10000")
    assert params["access_exclude"] == ["/data/bl.bed", "/data/more.bed"]
    assert "bed" not in params
    assert params["checked_options"]["target_conf"]["size_from"] == "wgs default"
    staged = to_params(validate_request(request(access_bed="/data/a.bed")).request,
                       staged={"/data/a.bed": Path("/private/1/a.bed")})
    assert staged["access_bed"] == "/private/1/a.bed"


# --- main.nf's params schema carries them ----------------------------------------------------

def test_the_params_schema_is_generated_and_enforces_the_rules():
    assert TARGET.read_text() == render(build())
    validator = Draft202012Validator(json.loads(TARGET.read_text()))

    def refused(data: dict) -> set[str]:
        params = to_params(validate_request(data).request)
        return {".".join(map(str, e.absolute_path)) or str(e.validator_value)
                for e in validator.iter_errors(params)}

    assert refused(request()) == set()
    assert refused(request(method="wgs", bed=None, access_bed="/data/a.bed")) == set()
    params = to_params(validate_request(request()).request)
    del params["bed"]
    assert [e.message for e in validator.iter_errors(params)] == ["'bed' is a required property"]
    mixed = {**params, "bed": "/data/kit.bed", "access_bed": "/data/a.bed",
             "access_exclude": ["/data/bl.bed"], "method": "amplicon"}
    messages = {(".".join(map(str, e.absolute_path)), e.schema.get("errorMessage"))
                for e in validator.iter_errors(mixed)}
    assert messages == {("access_exclude", EITHER), ("access_bed", AMPLICON),
                        ("access_exclude", AMPLICON)}
    bad = {**params, "bed": "/data/kit.bed", "access_exclude": ["/data/bl.txt"], "method": "panel"}
    assert {".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad)} == {
        "access_exclude.0", "method"}
