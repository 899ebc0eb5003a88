"""The launcher on rows with facts (issue 24): a samplesheet read inside the roots, its rows
validated with their line numbers, its VCFs checked with the columns they must have, and
params with a row per sample; a hostile sheet refused cheaply with a clear message."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.problems import errors
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.contract.samplesheet import MAX_BYTES
from cnvkit_nf.launch import samplesheets
from cnvkit_nf.storage.confined import Roots
from scaffold.simulate import SampleSpec, default_events, make_cohort

ROOT = Path(__file__).resolve().parents[2]
CHROM = 60_000


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """A tumour with its matched normal and a VCF of both columns, and one more control."""
    samples = [SampleSpec("Normal_A", "female", control=True),
               SampleSpec("Control_M", "male", control=True),
               SampleSpec("Tumour_A", "female", default_events(CHROM), purity=0.7,
                          normal="Normal_A")]
    return make_cohort(tmp_path_factory.mktemp("paired"), samples, reads_per_sample=20_000,
                       seed=11, chrom_length=CHROM, vcf_suffix=".vcf.gz")


def request_file(folder: Path, cohort, **changes) -> Path:
    request = {"samplesheet": str(folder / "cohort.csv"), "output_dir": str(folder / "out"),
               "ref": str(cohort.ref), "bed": str(cohort.bed), **changes}
    path = folder / "request.json"
    path.write_text(json.dumps({k: v for k, v in request.items() if v is not None}))
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_validate_and_params_of_a_samplesheet(paired, tmp_path):
    paired.write_samplesheet(tmp_path / "cohort.csv")
    request = request_file(tmp_path, paired)
    checked = cli("validate", "--check-inputs", str(request), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    written = cli("params", str(request), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    params = json.loads(written.stdout)
    assert "experimental_inputs" not in params and "samplesheet" not in params
    assert (params["reference_mode"], params["pool_matched_normals"]) == ("pooled", True)
    tumour = next(row for row in params["samples"] if row["role"] == "experimental")
    assert tumour == {"id": "Tumour_A", "bam": str(paired.bams["Tumour_A"]),
                      "role": "experimental", "sex": "female", "purity": 0.7,
                      "vcf": str(paired.vcfs["Tumour_A"]), "normal": "Normal_A"}
    assert [row["id"] for row in params["samples"]] == ["Normal_A", "Control_M", "Tumour_A"]


def test_check_inputs_names_the_sheets_line_and_column(paired, tmp_path):
    """A row's BAM that is not there, and a VCF without the sample's column, are found when
    the inputs are checked; each problem names where the sheet says it."""
    sheet = tmp_path / "cohort.csv"
    sheet.write_text("sample,bam,role,vcf,vcf_sample,normal\n"
                     f"Tumour_A,{paired.bams['Tumour_A']},experimental,"
                     f"{paired.vcfs['Tumour_A']},NOT_THERE,Normal_A\n"
                     f"Normal_A,{paired.bams['Normal_A']},control,,,\n"
                     f"Gone,{tmp_path / 'gone.bam'},control,,,\n")
    result = cli("validate", "--check-inputs", "--json", str(request_file(tmp_path, paired)),
                 cwd=tmp_path)
    assert result.returncode == 1
    by_field = {}
    for problem in json.loads(result.stdout)["problems"]:
        by_field.setdefault(problem["field"], []).append(problem["message"])
    assert by_field["samplesheet line 4, column bam"] == [f"{tmp_path / 'gone.bam'}: does "
                                                          "not exist"]
    assert any("NOT_THERE" in m for m in by_field["samplesheet line 2, column vcf"]), by_field


def test_the_vcf_checks_pass_the_columns_of_the_sample_and_its_normal(paired, tmp_path):
    """The tumour's VCF has its own column and its normal's: checked, and valid."""
    rows = paired.request_samples()
    request = {"samples": rows, "output_dir": str(tmp_path / "out"), "ref": str(paired.ref),
               "bed": str(paired.bed)}
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(request))
    result = cli("validate", "--check-inputs", "--json", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    wrong = {**request, "samples": [{**row, "normal": "Control_M"} if row.get("vcf") else row
                                    for row in rows]}
    path.write_text(json.dumps(wrong))
    result = cli("validate", "--check-inputs", "--json", str(path), cwd=tmp_path)
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert any(p["field"] == "samples[2].vcf" and "Control_M" in p["message"]
               for p in problems), problems


def sheet_validation(tmp_path: Path, name: str, content: bytes | None, roots: Roots | None = None):
    sheet = tmp_path / name
    if content is not None:
        sheet.write_bytes(content)
    data = {"samplesheet": str(sheet), "output_dir": str(tmp_path / "out"),
            "ref": str(tmp_path / "g.fa"), "bed": str(tmp_path / "t.bed")}
    roots = roots or Roots((tmp_path,), (tmp_path,), "the test", str(tmp_path))
    return samplesheets.with_rows(validate_request(data),
                                  lambda text: validate_request(data, sheet=text), roots, None)


def messages(validation) -> dict[str, str]:
    return {p.field: p.message for p in errors(validation.problems)}


def test_a_huge_sheet_is_refused_unread(tmp_path):
    sheet_validation(tmp_path, "warm.csv", b"bam,role\n")  # CNVkit's parsers imported
    started = time.monotonic()
    validation = sheet_validation(tmp_path, "huge.csv", b"bam,role\n" + b"x" * (MAX_BYTES + 10))
    assert "is larger than" in messages(validation)["samplesheet"]
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("row", [b"a.bam,control\n", b"a,b\n"])
def test_a_million_rows_are_refused_cheaply(tmp_path, row):
    sheet_validation(tmp_path, "warm.csv", b"bam,role\n")
    started = time.monotonic()
    validation = sheet_validation(tmp_path, "rows.csv", b"bam,role\n" + row * 10**6)
    message = messages(validation)["samplesheet"]
    assert "is larger than" in message or "has more than 500 rows" in message
    assert time.monotonic() - started < 1


def test_a_sheet_with_a_nul_or_not_utf8(tmp_path):
    nul = sheet_validation(tmp_path, "nul.csv", b"bam,role\n/d/a.bam,cont\x00rol\n")
    assert messages(nul) == {"samplesheet line 2": "holds a NUL character: a samplesheet is "
                                                   "CSV or TSV text"}
    latin = sheet_validation(tmp_path, "latin.csv", "bam,role\n/d/é.bam,control\n"
                             .encode("latin-1"))
    assert "is not UTF-8 text" in messages(latin)["samplesheet"]


def test_a_sheet_linked_from_outside_the_roots_is_refused(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out_of_roots"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("bam,role\n/d/a.bam,experimental\n")
    os.symlink(outside / "secret.csv", inside / "cohort.csv")
    validation = sheet_validation(inside, "cohort.csv", None,
                                  Roots((inside,), (inside,), "the test", str(inside)))
    message = messages(validation)["samplesheet"]
    assert "data roots" in message and "a.bam" not in message
    assert validation.request.samples == ()


def test_a_sheet_path_nextflow_would_expand_is_never_read(tmp_path):
    validation = sheet_validation(tmp_path, "${HOME}.csv", None)
    assert "Nextflow would expand" in messages(validation)["samplesheet"]


def test_a_sheet_in_an_unreachable_store_is_a_problem_not_a_crash(tmp_path):
    config = tmp_path / "storage.json"
    config.write_text(json.dumps({"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"}))
    location = parse_location("s3://bucket-x/cohort.csv")
    text, problems = samplesheets.read(location, Roots((), (), "the test"), str(config))
    assert text is None and [p.field for p in problems] == ["samplesheet"]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    from scaffold.seaweed import S3Server

    try:
        running = S3Server(tmp_path_factory.mktemp("s3") / "data").start()
    except RuntimeError as err:
        pytest.fail(str(err))
    running.client().create_bucket(Bucket="genes")
    yield running
    running.stop()


def test_a_sheet_in_object_storage_is_read_within_its_bound(s3_server, monkeypatch):
    """A sheet given as an object URI is read from the store (real S3: SeaweedFS); one
    larger than the bound is refused after reading no more than the bound; a missing one
    is named."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    s3 = s3_server.client()
    sheet = "sample,bam,role\nT,s3://genes/t.bam,experimental\n"
    s3.put_object(Bucket="genes", Key="cohort.tsv", Body=sheet.replace(",", "\t").encode())
    s3.put_object(Bucket="genes", Key="huge.csv", Body=b"bam,role\n" + b"x" * (MAX_BYTES + 1))
    roots = Roots((), (), "the test")
    text, problems = samplesheets.read(parse_location("s3://genes/cohort.tsv"), roots, None)
    assert (text, problems) == (sheet.replace(",", "\t"), [])
    data = {"samplesheet": "s3://genes/cohort.tsv", "output_dir": "s3://genes/out/",
            "ref": "s3://genes/g.fa", "bed": "s3://genes/t.bed"}
    validation = samplesheets.with_rows(validate_request(data),
                                        lambda text: validate_request(data, sheet=text),
                                        roots, None)
    assert validation.ok and [s.field for s in validation.request.samples] == \
        ["samplesheet line 2, column bam"]
    _, problems = samplesheets.read(parse_location("s3://genes/huge.csv"), roots, None)
    assert "is larger than" in problems[0].message
    _, problems = samplesheets.read(parse_location("s3://genes/none.csv"), roots, None)
    assert "not found" in problems[0].message
