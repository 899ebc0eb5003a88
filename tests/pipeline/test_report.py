"""bin/cnvkit_report.py on edge cases a real job can produce: one chromosome, no calls, a sex
CNVkit cannot tell, a scatter plot that could not be drawn, names that look like HTML."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "bin" / "cnvkit_report.py"
CALL_HEADER = "chromosome\tstart\tend\tgene\tlog2\tcn\tprobes\tweight\n"


def write_inputs(folder: Path) -> list[str]:
    (folder / "sex").mkdir()
    (folder / "cohort").mkdir()
    (folder / "job.json").write_text(json.dumps({
        "job": {"run_name": "tiny_run",
                "submitted": datetime.datetime.now(datetime.UTC).isoformat(),
                "request": {"call_conf": "--center mean", "output_dir": "/x/<out>"}},
        "pipeline": "0.1.0", "nextflow": "24.10.0"}))
    (folder / "results.txt").write_text("samples/Quiet/Quiet.cnr\nsamples/Loud/Loud.vcf\n")
    (folder / "sex" / "sex.tsv").write_text(
        "sample\tsex\tX_logratio\tY_logratio\n"
        "Quiet.targetcoverage.cnn\tUnknown\tNA\tNA\nQuiet.cnr\tUnknown\tNA\tNA\n"
        "Loud.targetcoverage.cnn\tUnknown\tNA\tNA\n")
    (folder / "reference-sex.tsv").write_text(
        "sample\tsex\tX_logratio\tY_logratio\nreference.cnn\tUnknown\tNA\tNA\n")
    (folder / "cohort" / "metrics.tsv").write_text(
        "sample\tsegments\tstdev\tmad\tiqr\tbivar\n"
        "Quiet.cnr\t1\t0.1\t0.08\t0.1\t0.1\nLoud.cnr\t2\t0.5\t0.2\t0.3\t0.4\n")
    (folder / "Quiet.call.cns").write_text(CALL_HEADER + "chr1\t0\t119500\t-\t0\t2\t120\t120\n")
    (folder / "Loud.call.cns").write_text(
        CALL_HEADER + "chr1\t0\t50000\tTP53,<b>x</b>\t-1\t1\t50\t50\n")
    return ["--job", "job.json", "--results", "results.txt", "--sex", "sex/sex.tsv",
            "--reference-sex", "reference-sex.tsv", "--metrics", "cohort/metrics.tsv",
            "--calls", "Quiet.call.cns", "Loud.call.cns", "--multiqc", "cohort/cnvkit_mqc.tsv"]


def test_report_of_edge_cases(tmp_path):
    args = write_inputs(tmp_path)
    done = subprocess.run([sys.executable, str(REPORT), *args, "--scatters", "--html",
                           "report.html"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text()
    assert "No calls: every segment has copy number 2." in page  # Quiet
    assert "CNVkit cannot tell which sex it assumes" in page
    assert "The reference was built by this job from its controls" in page
    assert page.count("No scatter plot: CNVkit could not draw it") == 2
    assert ">unknown</span>" in page  # sex match cannot be decided
    assert "stdev 0.5 &gt; 0.35" in page and "Quiet" in page
    assert "TP53, &lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "/x/&lt;out&gt;" in page and "/x/<out>" not in page  # the request, escaped
    assert "Run <b>tiny_run</b>, started" in page
    for path in ("samples/Loud/Loud.vcf", "cohort/metrics.tsv", "sex/sex.tsv", "report.html",
                 "manifest.json"):
        assert f'<a href="{path}">' in page, path
    table = (tmp_path / "cohort" / "cnvkit_mqc.tsv").read_text().splitlines()
    assert table[-2:] == ["Loud\tUnknown\t0.2000\t1", "Quiet\tUnknown\t0.0800\t0"]


def test_the_report_says_where_the_reference_came_from(tmp_path):
    args = write_inputs(tmp_path)
    job = json.loads((tmp_path / "job.json").read_text())
    for about, said in (
            ({"reference": {"key": "k", "reused": True}}, "The reference was <b>reused</b>"),
            ({"request": {"reference_cnn": "/pon/<x>.cnn"}},
             "The reference was <b>given</b> (reference_cnn /pon/&lt;x&gt;.cnn)"),
            ({"reference": {"key": "k", "reused": False, "warning": "the kept <i>k</i> was "
                            "corrupt (reference.cnn: size differs)"}},
             "The reference was built by this job from its controls (flat without any). "
             '<span class="flag">Warning: the kept &lt;i&gt;k&lt;/i&gt; was corrupt '
             "(reference.cnn: size differs).</span>")):
        (tmp_path / "job.json").write_text(json.dumps({**job, "job": {**job["job"], **about}}))
        done = subprocess.run([sys.executable, str(REPORT), *args, "--scatters", "--html",
                               "report.html"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        page = (tmp_path / "report.html").read_text()
        assert said in page and "<i>" not in page
        assert ("Warning:" in page) == ("warning" in about.get("reference", {}))


def test_without_html_only_the_multiqc_table_is_written(tmp_path):
    args = write_inputs(tmp_path)
    done = subprocess.run([sys.executable, str(REPORT), *args], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cohort" / "cnvkit_mqc.tsv").is_file()
    assert not (tmp_path / "report.html").exists()


def test_samples_bring_the_sex_check_and_each_calls_assumptions(tmp_path):
    """With the samples' facts: every given sex checked against CNVkit's inference (a mismatch
    flagged in the page and the MultiQC table), and each tumour's purity, ploidy, sex,
    centring and VCF as CNVkit's call parser reads call_conf and then the sample's options."""
    args = write_inputs(tmp_path)
    (tmp_path / "sex" / "sex.tsv").write_text(
        "sample\tsex\tX_logratio\tY_logratio\n"
        "Quiet.targetcoverage.cnn\tFemale\t0\t-5\nLoud.targetcoverage.cnn\tMale\t-1\t0\n"
        "Pool.targetcoverage.cnn\tUnknown\tNA\tNA\n")
    (tmp_path / "reference-sex.tsv").write_text(  # a reference given under its own name
        "sample\tsex\tX_logratio\tY_logratio\npon.cnn\tMale\t-1\t0\n")
    rows = [
        {"id": "Loud", "role": "experimental", "sex": "female", "purity": 0.6, "ploidy": None,
         "vcf": "Loud.vcf.gz", "vcf_sample": "L", "normal": "Own",
         "call_facts": "-x female --purity 0.6 -v Loud.vcf.gz -i L -n Own"},
        {"id": "Quiet", "role": "experimental", "sex": None, "purity": None, "ploidy": 3,
         "vcf": None, "vcf_sample": None, "normal": None, "call_facts": "--ploidy 3"},
        {"id": "Own", "role": "control", "sex": "male", "call_facts": None},
        {"id": "Pool", "role": "control", "sex": "male", "call_facts": None},
    ]
    (tmp_path / "samples.json").write_text(json.dumps(rows))
    done = subprocess.run([sys.executable, str(REPORT), *args, "--samples", "samples.json",
                           "--call-options=--center mode --purity 0.9", "--scatters",
                           "--html", "report.html"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text()
    assert '<span class="flag">MISMATCH: given female, CNVkit infers male</span>' in page
    assert "not checked: no coverage" in page  # Own: a matched normal out of the pool
    assert "cannot tell" in page  # Pool: CNVkit cannot tell
    assert "0.6 (given for the sample)" in page and "0.9 (call_conf)" in page
    assert "3 (given for the sample)" in page and "2 (CNVkit&#x27;s default)" in page
    assert "female (given for the sample)" in page and "female (inferred by CNVkit)" in page
    assert page.count("re-centred on the mode (--center, call_conf)") == 2
    assert "Loud.vcf.gz: column L, normal Own" in page
    assert page.count('<span class="ok">yes</span>') == 1  # Loud's sex matches pon.cnn's
    table = (tmp_path / "cohort" / "cnvkit_mqc.tsv").read_text().splitlines()
    assert "#     - cnvkit_sex_check:" in table
    assert table[-4:] == [
        "Loud\tMale\t0.2000\t1\tMISMATCH: given female, CNVkit infers male",
        "Quiet\tFemale\t0.0800\t0\tnot given",
        "Own\tUnknown\t\t\tnot checked: no coverage (a matched normal left out of the pool)",
        "Pool\tUnknown\t\t\tcannot tell"]
