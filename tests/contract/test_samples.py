"""Samples with facts (issue 24): `samples` rows and samplesheets give the same model as the
seed's two lists, and every bad input is named by field, or by the sheet's line and column."""

import copy
import json
from pathlib import Path

import pytest

from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.problems import errors
from cnvkit_nf.contract.request import validate_request

SEED = json.loads((Path(__file__).resolve().parents[1] / "data" / "seed_request.json")
                  .read_text())
TUMOUR = {"id": "T1", "bam": "/d/t1.sort.bam", "role": "experimental", "sex": "female",
          "purity": 0.6, "ploidy": 3, "vcf": "/d/t1.vcf.gz", "vcf_sample": "TUMOR",
          "normal": "N1"}
NORMAL = {"bam": "/d/N1.bam", "role": "control", "sex": "female"}
SHEET = ("sample,bam,role,sex,purity,ploidy,vcf,vcf_sample,normal\n"
         "T1,/d/t1.sort.bam,experimental,female,0.6,3,/d/t1.vcf.gz,TUMOR,N1\n"
         ",/d/N1.bam,control,female,,,,,\n")


def rows_request(**changes: object) -> dict:
    """The seed request with its lists replaced by `samples` rows (None removes a field)."""
    data = {k: v for k, v in copy.deepcopy(SEED).items() if not k.endswith("_inputs")}
    data |= {"samples": [TUMOUR, NORMAL], **changes}
    return {k: v for k, v in data.items() if v is not None}


def sheet_request(name: str = "/d/cohort.csv", **changes: object) -> dict:
    return rows_request(samples=None, samplesheet=name, **changes)


def error_map(data: dict, sheet: str | None = None) -> dict[str, str]:
    return {p.field: p.message for p in errors(validate_request(data, sheet=sheet).problems)}


def test_rows_and_a_sheet_give_the_same_samples_with_their_facts():
    by_rows = validate_request(rows_request())
    by_csv = validate_request(sheet_request(), sheet=SHEET)
    by_tsv = validate_request(sheet_request("/d/cohort.tsv"), sheet=SHEET.replace(",", "\t"))
    for validation in (by_rows, by_csv, by_tsv):
        assert validation.ok, validation.problems
    tumour, normal = by_rows.request.samples
    assert (tumour.id, tumour.role, tumour.sex, tumour.purity, tumour.ploidy) == \
        ("T1", "experimental", "female", 0.6, 3)
    assert tumour.vcf == parse_location("/d/t1.vcf.gz")
    assert by_rows.request.vcf_columns(tumour) == ["TUMOR", "N1"]  # the normal's id: its column
    assert (normal.id, normal.role, normal.vcf) == ("N1", "control", None)  # id: the BAM's name
    assert by_rows.request.vcf_columns(normal) == []
    alone = validate_request(rows_request(samples=[
        {k: v for k, v in TUMOUR.items() if k not in ("vcf_sample", "normal")}]))
    assert alone.ok and alone.request.vcf_columns(alone.request.samples[0]) == ["T1"]
    assert (tumour.field, tumour.vcf_field) == ("samples[0].bam", "samples[0].vcf")
    for validation in (by_csv, by_tsv):
        drop = ("field", "vcf_field")
        assert [{k: v for k, v in vars(s).items() if k not in drop}
                for s in validation.request.samples] == \
            [{k: v for k, v in vars(s).items() if k not in drop}
             for s in by_rows.request.samples]
    sheet_tumour = by_csv.request.samples[0]
    assert (sheet_tumour.field, sheet_tumour.vcf_field) == \
        ("samplesheet line 2, column bam", "samplesheet line 2, column vcf")
    assert (by_rows.request.way, by_csv.request.way) == ("samples", "samplesheet")
    assert by_csv.request.samplesheet == parse_location("/d/cohort.csv")


def test_the_vcfs_are_among_the_inputs_the_job_reads():
    request = validate_request(rows_request()).request
    fields = [field for field, _ in request.inputs()]
    assert fields == ["ref", "bed", "samples[0].bam", "samples[1].bam", "samples[0].vcf"]


def test_every_bad_input_of_the_issue_at_once():
    data = rows_request(experimental_inputs=["/d/x.bam"], samples=[
        {**TUMOUR, "purity": 1.2},                                 # purity outside (0, 1]
        {"bam": "/d/t2.bam", "role": "experimental", "sex": "m", "purity": 0},
        {**NORMAL, "vcf": "/d/n1.vcf", "purity": 0.5},             # a control's VCF, purity
        {"bam": "/d/t3.bam", "role": "experimental", "normal": "t2"},  # normal not a control
        {"bam": "/d/t4.bam", "role": "experimental", "id": "T1"},  # duplicate id
        {"bam": "/d/t5.bam", "role": "experimental", "colour": "red", "sample": "T5"},
        {"bam": "/d/t1.sort.bam", "role": "control", "id": "C9"},  # same BAM in two roles
    ])
    errs = error_map(data)
    assert errs["samples[0].purity"] == errs["samples[1].purity"] == \
        "must be a fraction more than 0 and at most 1, e.g. 0.7"
    assert errs["samples[1].sex"].startswith("must be male or female")
    assert "only on an experimental (tumour) row" in errs["samples[2].vcf"]
    assert "only on an experimental (tumour) row" in errs["samples[2].purity"]
    assert "'t2', which is not a control row" in errs["samples[3].normal"]
    assert "sample id 'T1' is also that of samples[0]" in errs["samples[4].id"]
    assert errs["samples[5].colour"] == "unknown field 'colour'"  # and the sheet's id column:
    assert errs["samples[5].sample"] == "unknown field 'sample' (did you mean 'id'?)"
    assert 'reference_mode "leave-one-out"' in errs["samples[6].bam"]
    assert errs["experimental_inputs"].startswith("must be [] or left out when samples")


def test_one_way_of_three():
    assert "cannot be given with samples" in \
        error_map(rows_request(samplesheet="/d/s.csv"))["samplesheet"]
    errs = error_map(sheet_request(control_inputs=["/d/c.bam"]), SHEET)
    assert errs == {"control_inputs": "must be [] or left out when samplesheet is given: a "
                    "request gives its BAMs one way: experimental_inputs and control_inputs, "
                    "samples, or samplesheet"}


def test_the_same_bam_in_both_lists_points_to_leave_one_out():
    errs = error_map({**SEED, "control_inputs": SEED["experimental_inputs"]})
    assert errs == {"control_inputs[0]": "the same BAM is already listed as "
                    "experimental_inputs[0]; to call each sample against a reference pooled "
                    'from the others, list each BAM once, as experimental, with reference_mode '
                    '"leave-one-out"'}


def test_the_lists_rules_hold_for_rows_in_their_words():
    assert error_map(rows_request(reference_only=True)) == {
        "samples[0].role": "must be control when reference_only is true: a reference-only job "
                           "calls no sample"}
    assert error_map(rows_request(reference_cnn="/d/ref.cnn")) == {
        "samples[1].role": "must be experimental when reference_cnn is given: the reference "
                           "takes the place of the controls"}
    assert error_map(rows_request(samples=[NORMAL])) == {
        "samples": "must have at least 1 experimental row (a sample to call)"}
    sheet = "bam,role\n/d/a.bam,experimental\n"
    assert error_map(sheet_request(reference_mode="leave-one-out"), sheet) == {
        "samplesheet": "must have at least 2 rows with reference_mode leave-one-out: each "
                       "sample is called against the others"}
    loo = rows_request(reference_mode="leave-one-out",
                       samples=[{"bam": "/d/a.bam", "role": "experimental"},
                                {"bam": "/d/b.bam", "role": "experimental"}])
    validation = validate_request(loo)
    assert validation.ok and validation.request.reference_mode == "leave-one-out"
    assert error_map({**loo, "reference_only": True})["reference_only"].startswith(
        "cannot be true with reference_mode leave-one-out")


def test_a_sheets_problems_name_its_line_and_column():
    sheet = ("sample,bam,role,sex,purity,ploidy,vcf,vcf_sample,normal,colour\n"
             "T1,/d/t1.bam,experimental,female,0.6,3,/d/t1.vcf.gz,TUMOR,N1,red\n"
             "\n"
             "T2,/d/t2.bam,experimental,m,high,2.5,,,N9,\n"
             "N1,/d/n1.bam,control,,0.5,,,,,\n"
             "T1,/d/t3.bam,experimental,,,,,,,\n"
             "T4,/d/t4.bam,experimental\n")
    errs = error_map(sheet_request(), sheet)
    assert errs == {
        "samplesheet line 1": "unknown column 'colour'; the columns are sample, bam, role, "
                              "sex, purity, ploidy, vcf, vcf_sample, normal",
        "samplesheet line 4, column sex": "must be male or female (leave it out to have it "
                                          "inferred)",
        "samplesheet line 4, column purity": "must be a fraction more than 0 and at most 1, "
                                             "e.g. 0.7",
        "samplesheet line 4, column ploidy": "must be a whole number of at least 1",
        "samplesheet line 4, column normal": "names no sample: 'N9' is not a row's id (the "
                                             "control rows are: N1)",
        "samplesheet line 5, column purity": "only on an experimental (tumour) row: give it on "
                                             "the row of the tumour it belongs to",
        "samplesheet line 6, column sample": "sample id 'T1' is also that of samplesheet line "
                                             "2; sample ids must be unique",
        "samplesheet line 7": "has 3 cells, the header 10 columns",
    }


@pytest.mark.parametrize(("sheet", "field", "message"), [
    ("", "samplesheet", "is empty: it needs a header row"),
    ("bam,role\n/d/a.bam,exp\x00erimental\n", "samplesheet line 2", "holds a NUL character"),
    ("sample,bam\nA,/d/a.bam\n", "samplesheet line 1", "has no column 'role', which is required"),
    ("bam,role,bam\n/d/a.bam,control,/d/b.bam\n", "samplesheet line 1",
     "column 'bam' is given more than once"),
    ('bam,role\n"/d/a.bam,control\n', "samplesheet line 2", "is not CSV or TSV"),
    ('bam,role\n"/d/a.bam"x,control\n', "samplesheet line 2", "is not CSV or TSV"),
    ("bam,rol\n/d/a.bam,control\n", "samplesheet line 1", "(did you mean 'role'?)"),
    ("bam,role\n" + "/d/a.bam,control\n" * 600, "samplesheet", "has more than 500 rows"),
    ("bam,role\n/d/${HOME}.bam,experimental\n", "samplesheet line 2, column bam",
     "Nextflow would expand"),
])
def test_a_sheet_that_cannot_be_read_as_rows(sheet, field, message):
    problems = validate_request(sheet_request(), sheet=sheet).problems
    assert any(p.field == field and message in p.message for p in errors(problems)), problems


def test_a_million_rows_are_refused_after_the_first_few_hundred():
    import time
    sheet = "bam,role\n" + "a.bam,control\n" * 1_000_000
    started = time.monotonic()
    errs = error_map(sheet_request(), sheet)
    assert "has more than 500 rows" in errs["samplesheet"]
    assert time.monotonic() - started < 2


def test_a_samplesheet_without_its_text_has_no_samples_yet():
    validation = validate_request(sheet_request())
    assert validation.ok and validation.request.samples == ()
    assert error_map(sheet_request(name="/d/cohort.xlsx"))["samplesheet"] == \
        "must be a CSV (.csv) or TSV (.tsv) file"


def test_call_conf_vcf_refused_and_per_sample_facts_warned():
    assert error_map(rows_request(call_conf="-v /d/x.vcf")) == {
        "call_conf": "-v/--vcf: VCFs go per sample: give each sample's in samples[].vcf or the "
                     "samplesheet's vcf column"}
    validation = validate_request(rows_request(call_conf="-x male --purity 0.5"))
    assert validation.ok
    warned = {p.message.split(" ")[0] for p in validation.problems
              if p.field == "call_conf" and p.severity == "warning"}
    assert warned == {"-x/--sample-sex", "--purity"}


def test_params_of_rows_and_of_a_sheet(tmp_path):
    """Rows become params.samples with their ids and absolute paths (a fact not given left
    out), the reference settings with them; they meet the pipeline's params schema."""
    from jsonschema import Draft202012Validator

    from cnvkit_nf.contract.params import to_params
    from cnvkit_nf.pipeline_files import PIPELINE

    data = rows_request(output_dir=str(tmp_path / "out"), ref="/d/g.fa", bed="/d/t.bed",
                        samples=[{**TUMOUR, "bam": "t1.sort.bam"}, NORMAL],
                        pool_matched_normals=False)
    params = to_params(validate_request(data).request, base=tmp_path)
    assert params["samples"] == [
        {**TUMOUR, "bam": str(tmp_path / "t1.sort.bam")},
        {"id": "N1", "bam": "/d/N1.bam", "role": "control", "sex": "female"}]
    assert (params["reference_mode"], params["pool_matched_normals"]) == ("pooled", False)
    assert "experimental_inputs" not in params and "control_inputs" not in params
    schema = json.loads((PIPELINE / "nextflow_schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(params)) == []
    wrong = {**params, "samples": [{**params["samples"][0], "purity": 0}]}
    assert list(Draft202012Validator(schema).iter_errors(wrong))
    sheet = to_params(validate_request(sheet_request(output_dir="/d/out", ref="/d/g.fa",
                                                     bed="/d/t.bed"), sheet=SHEET).request)
    assert sheet["samples"] == [{**TUMOUR}, {"id": "N1", **NORMAL}]


def test_a_seed_requests_params_are_as_they_were():
    from cnvkit_nf.contract.params import to_params

    local = {**SEED, **{k: f"/d/{k}" for k in ("output_dir", "ref", "bed")},
             "experimental_inputs": ["/d/S.bam"], "control_inputs": ["/d/C.bam"]}
    params = to_params(validate_request(local).request)
    assert params["experimental_inputs"] == ["/d/S.bam"]
    assert not {"samples", "reference_mode", "pool_matched_normals"} & params.keys()
    loo = to_params(validate_request({**local, "control_inputs": [], "reference_mode":
                                      "leave-one-out", "experimental_inputs":
                                      ["/d/S.bam", "/d/T.bam"]}).request)
    assert loo["reference_mode"] == "leave-one-out"


def test_the_input_check_applies_the_rules_across_rows(tmp_path):
    """`check_inputs.py --samples` (a direct or Platform run's CHECK_INPUTS) says what the
    launcher says of the rows; with --reference-mode the roles too."""
    import subprocess
    import sys

    from cnvkit_nf.pipeline_files import BIN

    rows = [{"id": "T", "bam": "/d/t.bam", "role": "experimental", "normal": "X"},
            {"id": "T", "bam": "/d/n.bam", "role": "control"}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    command = [sys.executable, str(BIN / "check_inputs.py"), "--samples",
               str(tmp_path / "rows.json")]
    found = subprocess.run(command, capture_output=True, text=True)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        "error: the row of n.bam, id: sample id 'T' is also that of the row of t.bam; sample "
        "ids must be unique",
        "error: the row of t.bam, normal: names no sample: 'X' is not a row's id (the control "
        "rows are: none)"]
    roles = subprocess.run([*command, "--reference-mode", "leave-one-out"], capture_output=True,
                           text=True)
    assert "must be experimental with reference_mode leave-one-out" in roles.stdout


def test_a_controls_vcf_sample_is_its_column_in_its_tumours_vcfs():
    """A matched normal's column in its tumour's VCF (Mutect2 names it after the normal's read
    group, Strelka `NORMAL`) is given on the normal's row; a tumour's vcf_sample needs its VCF."""
    normal = {**NORMAL, "vcf_sample": "NORMAL"}
    validation = validate_request(rows_request(samples=[TUMOUR, normal]))
    assert validation.ok, validation.problems
    tumour = validation.request.samples[0]
    assert validation.request.vcf_columns(tumour) == ["TUMOR", "NORMAL"]
    no_vcf = {k: v for k, v in TUMOUR.items() if k != "vcf"}
    assert error_map(rows_request(samples=[no_vcf, NORMAL]))["samples[0].vcf"].startswith(
        "required when vcf_sample is given")


def test_empty_lists_beside_rows_are_left_out_lists():
    """`[]` for the lists beside rows (as a params file or a form may write them) is as
    left out: the lists' own rules (at least 1, or 2 with leave-one-out) do not apply."""
    empty = {"experimental_inputs": [], "control_inputs": []}
    assert validate_request(rows_request(**empty)).ok
    germline = [{"bam": f"/d/G{i}.bam", "role": "experimental"} for i in range(2)]
    loo = validate_request(rows_request(samples=germline, reference_mode="leave-one-out",
                                        **empty))
    assert loo.ok, loo.problems
    assert not validate_request({**SEED, "reference_mode": "leave-one-out",
                                 "control_inputs": [], "experimental_inputs": ["/d/x.bam"]}).ok
