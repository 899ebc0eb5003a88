"""Results a lab reads: exports, plots, `--filter ci` calls, MultiQC content and report.html,
from one launcher run of a two-tumour cohort through the real Nextflow, CNVkit and Chromium."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pysam
import pytest

from cnvkit_nf.storage import manifest
from scaffold.demo import SEED, print_calls
from scaffold.simulate import Cohort, SampleSpec, make_cohort, standard_samples
from tests.pipeline.test_pipeline_e2e import (
    PLOTS_PER_TUMOUR,
    RESULTS_PER_JOB,
    RESULTS_PER_TUMOUR,
    SEGMETRICS,
    called_copies,
    launch,
)
from tests.pipeline.test_report import downloads

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
CHROM = 400_000
# Sample_1 (male) and Sample_2 (female) carry the default planted events; Sample_3 (female) none,
# so it has no calls at all; Noisy (female, none) has an uneven library, for the QC flags.
TUMOURS = ("Sample_1", "Sample_2", "Sample_3")
NOISY = "Noisy"
CALL_CONF = "--center mean --center-at 0 --drop-low-coverage --filter ci"
MISSING_GENE = "NOSUCHGENE"


def genes_in(cohort: Cohort, chrom: str, start: int, end: int) -> list[str]:
    """The annotation's genes lying wholly in chrom:start-end."""
    return [symbol for symbol, (where, first, last) in cohort.genes.items()
            if where == chrom and start <= first and last <= end]


def gained_gene(cohort: Cohort) -> str:
    """A gene in the middle of Sample_1's gain (its planted event of more than 2 copies)."""
    gain = next(e for s in cohort.samples if s.name == "Sample_1" for e in s.events
                if e.copies > 2)
    quarter = (gain.end - gain.start) // 4
    return genes_in(cohort, gain.chrom, gain.start + quarter, gain.end - quarter)[0]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Cohort:
    samples = [*standard_samples(CHROM, n_experimental=2), SampleSpec("Sample_3", "female"),
               SampleSpec(NOISY, "female", noise=0.5)]
    return make_cohort(tmp_path_factory.mktemp("three_tumours"), samples,
                       reads_per_sample=150_000, seed=11, chrom_length=CHROM)


@pytest.fixture(scope="module")
def results(cohort, nextflow_bin, tmp_path_factory) -> dict:
    """The seed's options, `--filter ci` added to call_conf, on four tumours and two controls."""
    work = tmp_path_factory.mktemp("results_run")
    request = {**json.loads(SEED.read_text()),
               "experimental_inputs": [str(cohort.bams[name]) for name in (*TUMOURS, NOISY)],
               "control_inputs": [str(cohort.bams["Control_M"]), str(cohort.bams["Control_F"])],
               "ref": str(cohort.ref), "bed": str(cohort.bed), "has_annotate": True,
               "annotation_file": str(cohort.annotation), "output_dir": str(work / "out"),
               "call_conf": CALL_CONF,
               "genes_of_interest": [gained_gene(cohort), MISSING_GENE]}
    (work / "request.json").write_text(json.dumps(request))
    done = launch(["run", str(work / "request.json")], work / "state", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": work / "out", "request": request, "stdout": done.stdout}


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader((line for line in handle if not line.startswith("#")),
                                   delimiter="\t"))


def test_every_result_exists_and_is_in_the_manifest(results):
    out = results["out"]
    expected = [*RESULTS_PER_JOB, "cohort/heatmap.png", "report.html"] + [
        f"samples/{name}/{name}{suffix}" for name in TUMOURS
        for suffix in (*RESULTS_PER_TUMOUR, *PLOTS_PER_TUMOUR)]
    listed = {entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]}
    assert [name for name in expected if name not in listed] == []
    assert manifest.verify(out) == []
    empty = [name for name in expected if (out / name).stat().st_size == 0]
    assert empty == ["samples/Sample_3/Sample_3.bed"]  # no calls: no region to export
    assert (out / "cohort" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "samples" / "Sample_1" / "Sample_1-diagram.pdf").read_bytes()[:5] == b"%PDF-"


def test_genes_of_interest_tables_and_plots(results, cohort):
    """Each tumour's table has the gene in Sample_1's gain (a call there, of its copies; none
    in Sample_3) and names the missing one; the gain's chromosome and that gene are plotted
    for Sample_1, nothing zoomed for Sample_3 (no calls); every diagram has its SVG."""
    gene = results["request"]["genes_of_interest"][0]
    gain = next(e for s in cohort.samples if s.name == "Sample_1" for e in s.events
                if e.copies > 2)
    for name in TUMOURS:
        folder = results["out"] / "samples" / name
        rows = read_table(folder / f"{name}.genes_of_interest.tsv")
        assert [row["gene"] for row in rows] == [gene, MISSING_GENE], name
        assert rows[1]["note"] == "not in the targets or annotation" and rows[1]["log2"] == ""
        assert (rows[0]["chromosome"], rows[0]["call"]) == (
            gain.chrom, "no" if name == "Sample_3" else "yes"), name
        assert ET.parse(folder / f"{name}-diagram.svg").getroot().tag.endswith("}svg")
    sample_1 = results["out"] / "samples" / "Sample_1"
    assert read_table(sample_1 / "Sample_1.genes_of_interest.tsv")[0]["cn"] == str(gain.copies)
    for panel in (f"chromosome-{gain.chrom}", f"gene-{gene}"):
        png = sample_1 / f"Sample_1-{panel}-scatter.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", panel
    zoomed = [p.name for p in (results["out"] / "samples" / "Sample_3").glob("*-scatter.png")]
    assert zoomed == ["Sample_3-scatter.png"]
    listed = {entry["path"] for entry in
              json.loads((results["out"] / "manifest.json").read_text())["files"]}
    assert f"samples/Sample_1/Sample_1-gene-{gene}-scatter.png" in listed


def test_vcf_holds_the_planted_deletion_and_gain(results, cohort):
    for name in TUMOURS:
        spec = next(s for s in cohort.samples if s.name == name)
        with pysam.VariantFile(str(results["out"] / "samples" / name / f"{name}.vcf")) as vcf:
            assert list(vcf.header.samples) == [name]
            records = list(vcf)
        if not spec.events:
            assert records == [], name  # no calls: a valid VCF without records
        for event in spec.events:
            found = [r for r in records if r.chrom == event.chrom
                     and r.start < event.end and r.stop > event.start]
            assert len(found) == 1, (name, event)
            record, sample = found[0], found[0].samples[name]
            if event.copies < 2:  # heterozygous deletion: one allele lost
                assert record.info["SVTYPE"] == "DEL" and sample["GT"] == (0, 1)
            else:
                assert record.info["SVTYPE"] == "DUP" and sample["CN"] == event.copies


def test_seg_has_one_block_per_tumour(results):
    rows = read_table(results["out"] / "cohort" / "cohort.seg")
    ids = [row["ID"] for row in rows]
    blocks = [ids[0]] + [b for a, b in zip(ids, ids[1:], strict=False) if a != b]
    assert blocks == sorted([*TUMOURS, NOISY])  # by name
    assert {"chrom", "loc.start", "loc.end", "num.mark", "seg.mean"} <= set(rows[0])


def test_filter_ci_calls_equal_cnvkit_by_hand_and_repeat(results, cohort, tmp_path):
    """segment, segmetrics (fixed settings), call --filter ci: by hand twice, equal to the job."""
    out, request = results["out"], results["request"]

    def cnvkit(folder: Path, *args) -> None:
        subprocess.run([str(BIN / "cnvkit.py"), *map(str, args)], cwd=folder, check=True,
                       capture_output=True)

    sample = out / "samples" / "Sample_1"
    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        cnvkit(folder, "segment", sample / "Sample_1.cnr", *shlex.split(request["segment_conf"]),
               "-p", "1", "-o", "Sample_1.cns")
        cnvkit(folder, "segmetrics", sample / "Sample_1.cnr", "-s", "Sample_1.cns", *SEGMETRICS,
               "-o", "Sample_1.segmetrics.cns")
        cnvkit(folder, "call", "Sample_1.segmetrics.cns", *shlex.split(CALL_CONF),
               "-o", "Sample_1.call.cns")
        for name in ("Sample_1.cns", "Sample_1.segmetrics.cns", "Sample_1.call.cns"):
            assert (folder / name).read_text() == (sample / name).read_text(), (run, name)
    header = (sample / "Sample_1.segmetrics.cns").read_text().splitlines()[0].split("\t")
    assert {"ci_lo", "ci_hi", "pi_lo", "pi_hi"} <= set(header)
    for event in next(s for s in cohort.samples if s.name == "Sample_1").events:
        assert called_copies(sample / "Sample_1.call.cns", event.chrom, event.start,
                             event.end) == {event.copies}


def test_multiqc_finds_the_custom_content(results, tmp_path):
    if not (BIN / "multiqc").exists():  # a test tool, not in the runtime's .venv
        pytest.fail(f"MultiQC is missing from {BIN}: run `make test` (the tests run with "
                    ".venv-test)")
    done = subprocess.run([str(BIN / "multiqc"), str(results["out"]), "-o", str(tmp_path),
                           "--no-ansi"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    stats = read_table(tmp_path / "multiqc_data" / "multiqc_general_stats.txt")
    by_sample = {row["Sample"]: row for row in stats}
    assert set(TUMOURS) <= set(by_sample)
    sexes = {name: by_sample[name]["custom_content_cnvkit-cnvkit_sex"] for name in TUMOURS}
    assert sexes == {"Sample_1": "Male", "Sample_2": "Female", "Sample_3": "Female"}
    calls = {name: int(float(by_sample[name]["custom_content_cnvkit-cnvkit_calls"]))
             for name in TUMOURS}
    assert calls["Sample_1"] >= 2 and calls["Sample_2"] >= 2 and calls["Sample_3"] == 0
    expected = {name: int(float(by_sample[name]["custom_content_cnvkit-cnvkit_expected"]))
                for name in TUMOURS}  # the male's one chrX and chrY: not calls
    assert expected["Sample_1"] >= 1 and expected["Sample_2"] == expected["Sample_3"] == 0
    assert all(float(by_sample[n]["custom_content_cnvkit-cnvkit_noise_mad"]) > 0 for n in TUMOURS)


def test_demo_prints_calls_apart_from_expected_states(results, capsys):
    """What `make demo` prints of a male tumour: its planted calls, then its one chrX and
    chrY copy as expected states (bin/expected_states.py, the report's rule)."""
    print_calls("Sample_1", results["out"] / "samples" / "Sample_1" / "Sample_1.call.cns")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "copy-number calls of Sample_1 (male, ploidy 2): 2"
    assert [line.split(":")[0].strip() for line in lines[1:3]] == ["chr2", "chr3"]
    assert [line.split("  ")[1].split(":")[1].strip() for line in lines[3:]] == ["chrX", "chrY"]
    assert all(line.startswith("  expected state, not a call: ") for line in lines[3:])


def test_report_opens_in_a_browser_with_the_planted_calls(results, cohort, browser, artefacts):
    """Chromium opens the page with no request beyond it; the calls tables (as their CSV
    downloads parse) hold each planted event at its copy number and nothing for Sample_3;
    the male's chrX is an expected state; the QC flags single out the noisy tumour."""
    page = results["out"] / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    visit = browser.visit(page.as_uri())
    assert visit.failed == [] and visit.console_errors == []
    assert [url for url in visit.requests if not url.startswith(("data:", "file:"))] == []
    (artefacts / "report.png").write_bytes(visit.screenshot)
    full = browser.visit(page.as_uri(), full_page=True)
    (artefacts / "report-full.png").write_bytes(full.screenshot)
    assert visit.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(visit.screenshot) > 20_000
    tables = downloads(text)
    for name in TUMOURS:
        rows = tables.get(f"{name}.calls.csv", [[]])
        assert all(row[0] not in ("chrX", "chrY") for row in rows[1:]), name
        for event in next(s for s in cohort.samples if s.name == name).events:
            called = {row[9] for row in rows[1:] if row[0] == event.chrom
                      and int(row[1]) < event.end and int(row[2]) > event.start}
            assert called == {str(event.copies)}, (name, event)
    assert "Sample_3.calls.csv" not in tables
    assert ("No calls: every segment has the copy number expected of a female sample of ploidy "
            "2.") in visit.text
    sample_1 = visit.text[visit.text.index("Expected states ("):]
    assert "chrX" in sample_1[:2000]  # the male's chrX, listed apart
    flagged = {name for name in (*TUMOURS, NOISY)
               if re.search(rf"<section class='sample' id='{name}'><h2>{name}</h2>\s*<p>QC: "
                            r'<span class="flag">', text)}
    assert flagged == {NOISY}
    assert "QC: none" in visit.text
    for path in ("samples/Sample_2/Sample_2.vcf", "cohort/cohort.seg", "reference/reference.cnn"):
        assert f'<li><a href="{path}">' in text, path
        assert (results["out"] / path).is_file()
    assert "<details><summary>Request</summary>" in text
    assert "src='data:image/png;base64," in text.split("<h2>Cohort heatmap</h2>")[1][:200]


ENTRY = {"path": "f", "size": 3, "sha256": "0" * 64}
NOT_AN_ENTRY = "is not an object of a path (a string), a size (an integer) and a sha256 (a string)"


def _listing(*entries) -> str:
    return json.dumps({"files": list(entries)})


MALFORMED_MANIFESTS = {  # name: (manifest.json, what the one line says after "not a valid ...")
    "nested 10,000 deep": ('{"files": ' + "[" * 10_000 + "]" * 10_000 + "}",
                           "its JSON is nested too deeply"),
    "nested deep beside the files": ('{"files": [], "x": ' + "[" * 10_000 + "]" * 10_000 + "}",
                                     "its JSON is nested too deeply"),
    "files an object": ('{"files": {"f": 3}}', 'it is not a JSON object with a "files" list'),
    "files missing": ('{"file": []}', 'it is not a JSON object with a "files" list'),
    "a list": (json.dumps([ENTRY]), 'it is not a JSON object with a "files" list'),
    "an item a string": (_listing("f"), f"files[0] {NOT_AN_ENTRY}"),
    "a path a number": (_listing(ENTRY, {**ENTRY, "path": 5}), f"files[1] {NOT_AN_ENTRY}"),
    "a path null": (_listing(ENTRY, {**ENTRY, "path": None}), f"files[1] {NOT_AN_ENTRY}"),
    "a size a string": (_listing({**ENTRY, "size": "3"}), f"files[0] {NOT_AN_ENTRY}"),
    "a path twice": (_listing(ENTRY, ENTRY), "files[1] lists f again"),
    "not UTF-8": ('{"files": ["\udcff"]}', "it is not JSON ('utf-8' codec can't decode byte 0xff"),
}


@pytest.mark.parametrize("text, said", [pytest.param(*case, id=name)
                                        for name, case in MALFORMED_MANIFESTS.items()])
def test_verify_names_a_malformed_manifest_in_one_line(tmp_path, text, said):
    """Deep nesting, and paths that are not strings, were tracebacks; a size that is a string
    was "differs from the manifest"."""
    (tmp_path / "f").write_text("ab\n")
    target = tmp_path / "manifest.json"
    target.write_bytes(text.encode("utf-8", "surrogateescape"))
    line = f"{target}: not a valid manifest: {said}"
    (problem,) = manifest.verify(tmp_path)
    assert problem.startswith(line), problem
    done = launch(["verify", str(tmp_path)], tmp_path / "state")
    assert done.returncode == 1 and done.stderr.startswith(line), done.stderr
    assert done.stderr.count("\n") == 1


def test_verify_refuses_a_huge_manifest_unread(tmp_path):
    limit = 256 << 20
    with open(tmp_path / "manifest.json", "wb") as handle:
        handle.truncate(limit + 1)  # sparse: no disk space
    assert manifest.verify(tmp_path) == [
        f"{tmp_path / 'manifest.json'}: not a valid manifest: it is larger than {limit} bytes"]
