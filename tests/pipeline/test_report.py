"""bin/cnvkit_report.py on edge cases a real job can produce (one chromosome, no calls, a sex
CNVkit cannot tell, a scatter plot that could not be drawn, names that look like HTML), and on
what a reviewer reads: calls apart from expected states, QC limits and cohort flags, each
call's confidence, genes of interest, CSV downloads."""

from __future__ import annotations

import csv
import datetime
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

from tests.conftest import load_script

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
    assert ("No calls: every segment has the copy number expected of a female sample of "
            "ploidy 2.") in page  # Quiet; CNVkit cannot tell its sex: call's default, female
    assert "reference sex unknown: CNVkit cannot tell it from the reference&#x27;s chrX" in page
    assert "The reference was built by this job from its controls" in page
    assert page.count("No scatter plot: CNVkit could not draw it") == 2
    assert "stdev 0.5 &gt; 0.35" in page and "Quiet" in page
    assert "this pipeline&#x27;s fixed limit for hybrid assays" in page  # the limit's source
    assert "TP53, &lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "/x/&lt;out&gt;" in page and "/x/<out>" not in page  # the request, escaped
    assert "Run <b>tiny_run</b>, started" in page
    for path in ("samples/Loud/Loud.vcf", "cohort/metrics.tsv", "sex/sex.tsv", "report.html",
                 "manifest.json"):
        assert f'<a href="{path}">' in page, path
    table = (tmp_path / "cohort" / "cnvkit_mqc.tsv").read_text().splitlines()
    assert table[-2:] == ["Loud\tUnknown\t0.2000\t1\t0", "Quiet\tUnknown\t0.0800\t0\t0"]


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
    assert "female (given for the sample)" in page
    assert "female (inferred by CNVkit&#x27;s call; coverage says female)" in page
    assert page.count("re-centred on the mode (--center, call_conf)") == 2
    assert "Loud.vcf.gz: column L, the normal&#x27;s column Own" in page
    # information, not a failure: Loud was called female (given) against a male reference
    assert ('<span class="info">male reference, female sample: usual, not a call (below)'
            "</span>") in page
    assert "threshold (-1.1, -0.25, 0.2, 0.7)" in page  # call's method and thresholds
    table = (tmp_path / "cohort" / "cnvkit_mqc.tsv").read_text().splitlines()
    assert "#     - cnvkit_sex_check:" in table
    assert table[-4:] == [
        "Loud\tMale\t0.2000\t1\t0\tMISMATCH: given female, CNVkit infers male",
        "Quiet\tFemale\t0.0800\t1\t0\tnot given",  # ploidy 3: its 2 copies are a call
        "Own\tUnknown\t\t\t\tnot checked: no coverage (a matched normal left out of the pool)",
        "Pool\tUnknown\t\t\t\tcannot tell"]


SEGMETRICS_HEADER = ("chromosome\tstart\tend\tgene\tlog2\tci_hi\tci_lo\tcn\tdepth\tprobes\t"
                     "weight\n")
MALE_CALLS = (  # a loss on chr2 over 8 genes, one chrX and one chrY copy: 1 call, 2 expected
    "chr1\t0\t400000\t-\t0.01\t0.02\t0.00\t2\t50\t400\t400\n"
    "chr2\t0\t150000\tG1,G2,G3,G4,G5,G6,G7,G8\t-0.95\t-0.90\t-1.01\t1\t40\t150\t150\n"
    "chr2\t150000\t400000\t-\t0.0\t0.01\t-0.01\t2\t50\t250\t250\n"
    "chrX\t0\t400000\t-\t-1.0\t-0.98\t-1.02\t1\t25\t400\t400\n"
    "chrY\t0\t100000\t-\t-1.0\t-0.9\t-1.1\t1\t25\t100\t100\n"
    "chrUn_KI270742v1\t0\t5000\t-\t0.0\t0.1\t-0.1\t2\t50\t5\t5\n")


def write_cohort(folder: Path, noisy: str = "T4") -> list[str]:
    """Five tumours: T1 a male with a loss on chr2 (and its expected chrX/chrY states), the
    others female without calls; `noisy` with 3 times the others' noise; three controls, one
    noisy against the others."""
    args = write_inputs(folder)
    names = ["T1", "T2", "T3", "T4", "T5"]
    quiet = SEGMETRICS_HEADER + (  # a female without calls: two chrX copies, no chrY bins
        "chr1\t0\t400000\t-\t0.01\t0.02\t0.00\t2\t50\t400\t400\n"
        "chr2\t0\t400000\t-\t0.0\t0.01\t-0.01\t2\t50\t400\t400\n"
        "chrX\t0\t400000\t-\t0.0\t0.02\t-0.02\t2\t50\t400\t400\n")
    for name in names:
        (folder / f"{name}.call.cns").write_text(
            SEGMETRICS_HEADER + MALE_CALLS if name == "T1" else quiet)
    (folder / "T1.bintest.cns").write_text(
        "chromosome\tstart\tend\tgene\tlog2\tdepth\tweight\tprobes\tp_bintest\n"
        "chr2\t1000\t2000\tG1\t-1.2\t30\t1\t1\t0.00012\nchr5\t1000\t2000\tZ\t-1\t30\t1\t1\t0.01\n")
    (folder / "cohort" / "metrics.tsv").write_text(
        "sample\tsegments\tstdev\tmad\tiqr\tbivar\n" + "".join(
            f"{n}.cnr\t{6 + i}\t{0.15 + 0.01 * i:.2f}\t{0.15 + 0.01 * i:.2f}\t"
            f"{0.2 + 0.01 * i:.2f}\t0.1\n" if n != noisy else f"{n}.cnr\t9\t0.62\t0.55\t0.7\t0.3\n"
            for i, n in enumerate(names)))
    (folder / "controls-metrics.tsv").write_text(
        "sample\tsegments\tstdev\tmad\tiqr\tbivar\n"
        "panel/C1.cnr\t24\t0.12\t0.1\t0.13\t0.05\npanel/C2.cnr\t24\t0.13\t0.11\t0.14\t0.05\n"
        "panel/C3.cnr\t24\t1.0\t0.1\t0.15\t0.05\npanel/Bad.cnr\t24\t0.5\t0.45\t0.6\t0.3\n")
    (folder / "T1.genes_of_interest.tsv").write_text(
        "gene\tchromosome\tstart\tend\tlog2\tdepth\tprobes\tcn\tcall\tnote\n"
        "G1\tchr2\t1000\t9000\t-0.97\t40\t12\t1\tyes\t\n"
        "ERBB2\tchr1\t5000\t9000\t0.01\t50\t9\t2\tno\t\n"
        "NOSUCH\t\t\t\t\t\t\t\t\tnot in the targets or annotation\n")
    calls = args.index("--calls")
    return [*args[:calls + 1], *(f"{n}.call.cns" for n in names),
            *args[calls + 3:]]


def run_report(folder: Path, args: list[str], *extra: str) -> str:
    done = subprocess.run([sys.executable, str(REPORT), *args, *extra, "--html", "report.html"],
                          cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (folder / "report.html").read_text()


def downloads(page: str) -> dict[str, list[list[str]]]:
    """Each CSV download of the page: its file name and its rows, parsed."""
    found = {}
    for name, uri in re.findall(r'download="([^"]+)" href="data:text/csv;charset=utf-8,([^"]+)"',
                                page):
        found[name] = list(csv.reader(urllib.parse.unquote(uri).splitlines()))
    return found


def test_expected_states_are_listed_apart_and_not_counted(tmp_path):
    args = write_cohort(tmp_path)
    page = run_report(tmp_path, args)
    section = page[page.index("<section class='sample' id='T1'>"):]
    section = section[:section.index("</section>")]
    assert "<h3>Calls (1)</h3>" in section
    assert "<h3 class='expected'>Expected states (2), not calls</h3>" in section
    assert section.count('<tr class="expected"><td>chrX</td>') == 1
    assert section.count('<tr class="expected"><td>chrY</td>') == 1
    assert "male (inferred by CNVkit&#x27;s call" in section
    table = (tmp_path / "cohort" / "cnvkit_mqc.tsv").read_text().splitlines()
    assert "T1\tUnknown\t0.1500\t1\t2" in table  # 1 call, 2 expected states
    assert "T2\tUnknown\t0.1600\t0\t0" in table  # female: chrX 2 copies, no chrY segment


def test_each_call_shows_size_probes_confidence_bintest_and_genes(tmp_path):
    args = write_cohort(tmp_path)
    page = run_report(tmp_path, args, "--bintests", "T1.bintest.cns")
    rows = downloads(page)["T1.calls.csv"]
    assert rows[0] == ["chromosome", "start", "end", "size (bp)", "probes", "log2", "CI low",
                       "CI high", "bintest p", "cn", "genes"]
    assert rows[1:] == [["chr2", "0", "150000", "150,000", "150", "-0.950", "-1.010", "-0.900",
                         "0.00012", "1", "G1, G2, G3, G4, G5, G6 and 2 more"]]
    assert "T2.calls.csv" not in downloads(page)  # no calls, nothing to download


def test_downloads_keep_spreadsheets_from_running_formulas():
    html_ = load_script("report_html")
    assert [html_.spreadsheet_safe(cell) for cell in
            ("=HYPERLINK(\"x\")", "+1+cmd", "@SUM(A1)", "-0.950", "-1,010", "TP53", "")] == [
        "'=HYPERLINK(\"x\")", "'+1+cmd", "'@SUM(A1)", "-0.950", "-1,010", "TP53", ""]


def test_qc_flags_name_their_source_and_single_out_the_noisy_sample(tmp_path):
    args = write_cohort(tmp_path)
    page = run_report(tmp_path, args, "--controls-metrics", "controls-metrics.tsv")
    flagged = {name for name in ("T1", "T2", "T3", "T4", "T5")
               if re.search(rf"<section class='sample' id='{name}'><h2>{name}</h2>\s*<p>QC: "
                            r'<span class="flag">', page)}
    assert flagged == {"T4"}
    assert "mad 0.55 &gt; cohort" in page and "(median 0.17 + 3 MAD)" in page
    # the noise limits come from the panel: twice its median
    assert "2 x the median mad of the 4 controls, each against a reference of the others" in page
    assert "one segment per 1,000 of the job&#x27;s" not in page  # bins unknown here
    assert "Control Bad is noisy: consider dropping it from the controls" in page
    assert "Control C1 is noisy" not in page
    assert "Control C3 is noisy" not in page  # its stdev alone is high: a few far bins


def test_panel_limits_and_bin_count_scale_the_limits(tmp_path):
    qc = load_script("report_qc")
    panel = {"C1": {"stdev": 0.1, "mad": 0.1, "iqr": 0.1}, "C2": {"stdev": 0.3, "mad": 0.2,
                                                                  "iqr": 0.3}}
    exome = qc.limits("hybrid", 400_000, panel)
    assert round(exome["mad"].value, 9) == 0.3 and "2 controls" in exome["mad"].source
    assert exome["segments"].value == 400 and "400,000 bins" in exome["segments"].source
    small = qc.limits("wgs", 3000, {})
    assert small["mad"].value == 0.2 and "wgs assays" in small["mad"].source
    assert small["segments"].value == 100
    assert qc.outliers({"a": {"mad": 1.0}, "b": {"mad": 9.0}}) == {"a": [], "b": []}  # < 3


def test_genes_of_interest_table_downloads_and_names_missing_genes(tmp_path):
    args = write_cohort(tmp_path)
    job = json.loads((tmp_path / "job.json").read_text())
    job["job"]["request"]["genes_of_interest"] = ["G1", "ERBB2", "NOSUCH"]
    (tmp_path / "job.json").write_text(json.dumps(job))
    page = run_report(tmp_path, args, "--genes-of-interest", "T1.genes_of_interest.tsv")
    rows = downloads(page)["T1.genes_of_interest.csv"]
    assert [row[0] for row in rows] == ["gene", "G1", "ERBB2", "NOSUCH"]
    assert rows[1][4:8] == ["-0.97", "12", "1", "yes"]
    assert "Not in the targets or annotation: NOSUCH." in page
    assert page.count("No table of genes of interest was written") == 4  # T2..T5


def test_plots_are_embedded_and_the_request_is_collapsed(tmp_path):
    args = write_cohort(tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    for name in ("T1-scatter.png", "T1-chromosome-chr2-scatter.png", "T1-gene-G1-scatter.png",
                 "heatmap.png"):
        (tmp_path / name).write_bytes(png)
    (tmp_path / "T1-diagram.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    page = run_report(tmp_path, args, "--scatters", "T1-scatter.png", "--panels",
                      "T1-chromosome-chr2-scatter.png", "T1-gene-G1-scatter.png",
                      "T1-diagram.svg", "--heatmap", "heatmap.png")
    assert page.count("src='data:image/png;base64,") == 4
    assert page.count("src='data:image/svg+xml;base64,") == 1
    assert "<figcaption>chromosome chr2</figcaption>" in page
    assert "<figcaption>gene G1</figcaption>" in page
    assert "Left out: 1 contigs that are not primary chromosomes (chrUn_KI270742v1)" in page
    assert "<details><summary>Request</summary><pre>" in page
    assert "http://" not in page  # the SVG's namespace is inside its base64


def test_embedded_pngs_are_palette_reduced_and_the_files_kept(tmp_path):
    """The page embeds a plot in 256 colours; the file keeps CNVkit's RGBA bytes."""
    from PIL import Image

    html_ = load_script("report_html")
    png = tmp_path / "plot.png"
    Image.new("RGBA", (64, 16), (255, 128, 0, 255)).save(png)
    before = png.read_bytes()
    embedded = html_.embedded_bytes(png)
    assert embedded[:8] == b"\x89PNG\r\n\x1a\n" and embedded[25] == 3  # colour type: palette
    assert png.read_bytes() == before and before[25] == 6  # RGBA, untouched
