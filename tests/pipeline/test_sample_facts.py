"""Issue 24 end to end: per-sample facts (sex, purity, a VCF and its matched normal) and
leave-one-out references, through the real `nextflow run` and CNVkit, each scenario compared
with the same CNVkit commands run by hand, one process each.

One cohort and one run per scenario, shared by its tests (module-scoped fixtures):
- a tumour/normal pair at purity 0.6 with its VCF, given as `samples` rows;
- a mixed-sex cohort given by a samplesheet (a direct `--samplesheet` launch), the male tumour
  stated as female (a sample swap, or a typo);
- the same four BAMs as a germline cohort, leave-one-out.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaffold.simulate import Event, SampleSpec, default_events, make_cohort, standard_samples
from tests.conftest import launch, load_script

FIG_SIZE = load_script("sample_plots").FIG_SIZE  # the genome scatter's, as the pipeline draws it

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CNVKIT = str(Path(sys.executable).parent / "cnvkit.py")
CHROM = 300_000
# The pipeline's fixed segmetrics settings (modules/cnvkit/sample).
SEGMETRICS = ("--ci", "--pi", "--alpha", "0.5", "--smooth-bootstrap", "0")
PER_TUMOUR = (".cnr", ".cns", ".segmetrics.cns", ".call.cns", ".genemetrics.tsv", ".bed")


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader((line for line in handle if not line.startswith("#")),
                                   delimiter="\t"))


def without_date(vcf: Path) -> list[str]:
    return [line for line in vcf.read_text().splitlines() if not line.startswith("##fileDate")]


def nextflow_run(nextflow_bin: str, cwd: Path, *args: str,
                 profile: str = "local") -> subprocess.CompletedProcess:
    """`nextflow run main.nf -profile PROFILE ARGS` as a user types it, the venv's tools on
    PATH."""
    env = {**os.environ, "NXF_OFFLINE": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([nextflow_bin, "run", str(ROOT / "main.nf"), "-profile", profile,
                           *args], cwd=cwd, capture_output=True, text=True, env=env)


def processes_run(out: Path) -> list[str]:
    trace = out / "pipeline_info" / "trace.tsv"
    return [row["process"].split(":")[-1] for row in read_table(trace)] if trace.exists() else []


class ByHand:
    """CNVkit's command lines run by hand in one folder, one `cnvkit.py` process each: the
    lines the pipeline runs, with the sample's facts as a person would add them."""

    def __init__(self, folder: Path, ref: Path, bed: Path) -> None:
        self.folder, self.ref = folder, ref
        folder.mkdir(parents=True, exist_ok=True)
        self("access", ref, "-o", "access.bed")
        self("target", bed, "-o", "targets.bed")
        self("antitarget", "targets.bed", "-g", "access.bed", "-o", "antitargets.bed")

    def __call__(self, *args) -> Path:
        subprocess.run([CNVKIT, *map(str, args)], cwd=self.folder, check=True,
                       capture_output=True)
        return self.folder

    def coverage(self, name: str, bam: Path) -> list[str]:
        """The sample's target and antitarget coverage files (names)."""
        for kind in ("target", "antitarget"):
            self("coverage", bam, f"{kind}s.bed", "-p", "1", "-o", f"{name}.{kind}coverage.cnn")
        return [f"{name}.targetcoverage.cnn", f"{name}.antitargetcoverage.cnn"]

    def reference(self, coverages: list[str], out: str, *sex: str) -> Path:
        self("reference", *sorted(coverages), *sex, "-f", self.ref, "-o", out)
        return self.folder / out

    def tumour(self, name: str, reference: str, call: tuple = (), sex: tuple = (),
               variants: tuple = ()) -> None:
        """fix ... export bed, as modules/cnvkit/sample runs them; `call` the sample's call
        options, `sex` its -x, `variants` its -v/-i/-n."""
        self("fix", f"{name}.targetcoverage.cnn", f"{name}.antitargetcoverage.cnn", reference,
             "-o", f"{name}.cnr")
        self("segment", f"{name}.cnr", "-p", "1", "-o", f"{name}.cns")
        self("segmetrics", f"{name}.cnr", "-s", f"{name}.cns", *SEGMETRICS,
             "-o", f"{name}.segmetrics.cns")
        self("call", f"{name}.segmetrics.cns", *call, "-o", f"{name}.call.cns")
        self("genemetrics", f"{name}.cnr", *sex, "-s", f"{name}.cns",
             "-o", f"{name}.genemetrics.tsv")
        for kind in ("vcf", "bed"):
            self("export", kind, f"{name}.call.cns", "-i", name, *sex, "-o", f"{name}.{kind}")
        if variants:
            self("scatter", f"{name}.cnr", "-s", f"{name}.call.cns", *variants,
                 "--fig-size", *FIG_SIZE, "-o", f"{name}-scatter.png")


def assert_tumour_equal(out: Path, hand: Path, name: str) -> None:
    for suffix in PER_TUMOUR:
        ours = (out / "samples" / name / f"{name}{suffix}").read_text()
        assert ours == (hand / f"{name}{suffix}").read_text(), name + suffix
    assert (without_date(out / "samples" / name / f"{name}.vcf")
            == without_date(hand / f"{name}.vcf"))


# --- (a) a tumour/normal pair at purity 0.6 with its VCF ---------------------------------------


@pytest.fixture(scope="module")
def pair(nextflow_bin, tmp_path_factory):
    """Tumour_1 (male, purity 0.6, the default deletion and gain, chr4 a copy-neutral LOH
    from end to end; its VCF column named TUMOR) and its matched normal Normal_1; one run with
    the sample rows."""
    work = tmp_path_factory.mktemp("pair")
    loh = Event("chr4", 0, CHROM, 2, minor=0)
    specs = [SampleSpec("Normal_1", "male", control=True),
             SampleSpec("Tumour_1", "male", (*default_events(CHROM), loh), purity=0.6,
                        normal="Normal_1", vcf_sample="TUMOR")]
    cohort = make_cohort(work / "cohort", specs, reads_per_sample=100_000, seed=11,
                         chrom_length=CHROM, vcf_suffix=".vcf.gz")
    params = {"samples": cohort.request_samples(), "ref": str(cohort.ref),
              "bed": str(cohort.bed), "output_dir": str(work / "out")}
    (work / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, work, "-params-file", str(work / "params.json"))
    return {"cohort": cohort, "result": result, "out": work / "out", "work": work}


def test_pair_calls_equal_cnvkit_by_hand_with_vcf_and_purity(pair):
    assert pair["result"].returncode == 0, pair["result"].stdout
    cohort, out = pair["cohort"], pair["out"]
    hand = ByHand(pair["work"] / "hand", cohort.ref, cohort.bed)
    coverages = hand.coverage("Normal_1", cohort.bams["Normal_1"])
    hand.coverage("Tumour_1", cohort.bams["Tumour_1"])
    # the one pooled control was given as male: the reference is built with -x male
    hand.reference(coverages, "reference.cnn", "-x", "male")
    shutil.copy(cohort.vcfs["Tumour_1"], hand.folder)
    variants = ("-v", cohort.vcfs["Tumour_1"].name, "-i", "TUMOR", "-n", "Normal_1")
    hand.tumour("Tumour_1", "reference.cnn", sex=("-x", "male"), variants=variants,
                call=("-x", "male", "--purity", "0.6", *variants))
    assert (out / "reference" / "reference.cnn").read_text() == \
        (hand.folder / "reference.cnn").read_text()
    assert_tumour_equal(out, hand.folder, "Tumour_1")
    # the scatter has the BAF panel: the plot CNVkit draws with the VCF, not the one without
    scatter = (out / "samples" / "Tumour_1" / "Tumour_1-scatter.png").read_bytes()
    assert scatter == (hand.folder / "Tumour_1-scatter.png").read_bytes()
    hand("scatter", "Tumour_1.cnr", "-s", "Tumour_1.call.cns", "--fig-size", *FIG_SIZE,
         "-o", "plain.png")
    assert scatter != (hand.folder / "plain.png").read_bytes()


def test_pair_loh_shows_in_the_allele_frequencies(pair):
    assert pair["result"].returncode == 0, pair["result"].stdout
    calls = read_table(pair["out"] / "samples" / "Tumour_1" / "Tumour_1.call.cns")
    loh = [row for row in calls if row["chromosome"] == "chr4"]
    neutral = [row for row in calls if row["chromosome"] == "chr1"]
    assert loh and neutral
    # two copies, none of the minor allele: copy-neutral loss of heterozygosity
    assert {(row["cn"], row["cn1"], row["cn2"]) for row in loh} == {("2", "2", "0")}
    assert all(float(row["baf"]) > 0.8 for row in loh)
    assert {(row["cn"], row["cn2"]) for row in neutral} == {("2", "1")}


def test_pair_report_states_the_assumptions(pair):
    assert pair["result"].returncode == 0, pair["result"].stdout
    page = (pair["out"] / "report.html").read_text()
    assert "0.6 (given for the sample)" in page
    assert "Tumour_1.vcf.gz: column TUMOR, the normal&#x27;s column Normal_1" in page
    assert "CNVkit&#x27;s default: fix centres on the median" in page
    assert "with the B-allele frequencies of its SNV VCF below" in page  # scatter's BAF panel
    checks = {row["Sample"]: row["cnvkit_sex_check"]
              for row in read_table(pair["out"] / "cohort" / "cnvkit_mqc.tsv")}
    assert checks == {"Tumour_1": "ok", "Normal_1": "ok"}


# --- (b) and (d): a mixed-sex cohort from a samplesheet, a tumour's sex stated wrong -----------


@pytest.fixture(scope="module")
def germline(tmp_path_factory):
    """Control_M, Control_F, Sample_1 (male), Sample_2 (female), with the default events; and
    every sample's coverage by hand (shared by the samplesheet and leave-one-out scenarios)."""
    work = tmp_path_factory.mktemp("mixed")
    cohort = make_cohort(work / "cohort", standard_samples(CHROM, n_experimental=2),
                         reads_per_sample=60_000, seed=5, chrom_length=CHROM)
    hand = ByHand(work / "hand", cohort.ref, cohort.bed)
    coverages = {name: hand.coverage(name, bam) for name, bam in cohort.bams.items()}
    return {"cohort": cohort, "hand": hand, "coverages": coverages, "work": work}


@pytest.fixture(scope="module")
def sheet_run(nextflow_bin, germline):
    """`nextflow run --samplesheet sheet.csv`, Sample_1 (male) stated as female."""
    work, cohort = germline["work"], germline["cohort"]
    cohort.write_samplesheet(work / "sheet.csv", wrong_sex=["Sample_1"])
    result = nextflow_run(nextflow_bin, work, "--samplesheet", "sheet.csv", "--ref",
                          str(cohort.ref), "--bed", str(cohort.bed), "--output_dir", "out")
    return {"result": result, "out": work / "out"}


def test_sheet_calls_equal_cnvkit_by_hand_with_each_sex(sheet_run, germline):
    assert sheet_run["result"].returncode == 0, sheet_run["result"].stdout
    hand, coverages, out = germline["hand"], germline["coverages"], sheet_run["out"]
    # the controls were given different sexes: the reference takes no -x
    hand.reference(coverages["Control_M"] + coverages["Control_F"], "reference.cnn")
    assert (out / "reference" / "reference.cnn").read_text() == \
        (hand.folder / "reference.cnn").read_text()
    for name in ("Sample_1", "Sample_2"):  # both stated as female, Sample_1 wrongly
        hand.tumour(name, "reference.cnn", call=("-x", "female"), sex=("-x", "female"))
        assert_tumour_equal(out, hand.folder, name)
        sexed = [row for row in read_table(out / "samples" / name / f"{name}.call.cns")
                 if row["chromosome"] in ("chrX", "chrY")]
        assert sexed, name  # the comparison covers the sex chromosomes' calls
    # every tumour was given one sex: the heatmap draws them as that sex
    hand("heatmap", "Sample_1.cns", "Sample_2.cns", "-x", "female", "-o", "heatmap.png")
    assert (out / "cohort" / "heatmap.png").read_bytes() == \
        (hand.folder / "heatmap.png").read_bytes()


def test_sheet_flags_the_stated_sex_that_coverage_contradicts(sheet_run):
    assert sheet_run["result"].returncode == 0, sheet_run["result"].stdout
    checks = {row["Sample"]: row["cnvkit_sex_check"]
              for row in read_table(sheet_run["out"] / "cohort" / "cnvkit_mqc.tsv")}
    assert checks == {"Sample_1": "MISMATCH: given female, CNVkit infers male",
                      "Sample_2": "ok", "Control_M": "ok", "Control_F": "ok"}
    page = (sheet_run["out"] / "report.html").read_text()
    assert '<span class="flag">MISMATCH: given female, CNVkit infers male</span>' in page


def test_bad_samplesheet_is_refused_before_any_task(nextflow_bin, germline, tmp_path):
    cohort = germline["cohort"]
    sheet = tmp_path / "sheet.tsv"
    planted = tmp_path / "planted"
    sheet.write_text("sample\tbam\trole\tsex\tpurity\tploidy\tvcf\n"
                     f"\t{cohort.bams['Control_M']}\tcontrol\t\t\t\t\n"
                     f"T1\t{cohort.bams['Sample_1']}\ttumour\tM\t1.5\t2\t\n"
                     f"T 2\t{cohort.bams['Sample_2']}\texperimental\t\tabc\t1.5\t\n"
                     f"T3\t{cohort.bams['Control_F']}\texperimental\t\t\t\t"
                     f"$(touch {planted}).vcf\n")
    result = nextflow_run(nextflow_bin, tmp_path, "--samplesheet", str(sheet), "--ref",
                          str(cohort.ref), "--bed", str(cohort.bed), "--output_dir", "out")
    assert result.returncode != 0
    for said in ("samplesheet line 3: role: must be experimental or control, got 'tumour'",
                 "samplesheet line 3: sex: must be male or female",
                 "samplesheet line 3: purity: must be a fraction more than 0 and at most 1",
                 "samplesheet line 4: sample: must be made of letters, digits",
                 "samplesheet line 4: purity: must be a number, got 'abc'",
                 "samplesheet line 4: ploidy: must be an integer, got '1.5'",
                 "samplesheet line 5: vcf: must be a VCF file (.vcf or .vcf.gz); file name"):
        assert said in result.stdout, said
    assert not planted.exists()  # a path is a path: nothing in it ran
    assert "line 2" not in result.stdout
    assert processes_run(tmp_path / "out") == []
    missing = nextflow_run(nextflow_bin, tmp_path, "--samplesheet", "gone.csv", "--ref",
                           str(cohort.ref), "--bed", str(cohort.bed), "--output_dir", "out2")
    assert missing.returncode != 0 and "samplesheet: no such file: gone.csv" in missing.stdout


def test_rows_that_break_a_rule_across_rows_stop_at_the_input_check(nextflow_bin, germline,
                                                                    tmp_path):
    """A matched normal that is no row's id: the input check (the first task) refuses the
    sheet, naming the row and the column; no CNVkit task starts."""
    cohort = germline["cohort"]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,bam,role,normal\n"
                     f"N1,{cohort.bams['Control_M']},control,\n"
                     f"T1,{cohort.bams['Sample_1']},experimental,Nobody\n")
    result = nextflow_run(nextflow_bin, tmp_path, "--samplesheet", str(sheet), "--ref",
                          str(cohort.ref), "--bed", str(cohort.bed), "--output_dir", "out")
    assert result.returncode != 0
    assert "the row of Sample_1.bam, normal" in result.stdout + result.stderr
    assert processes_run(tmp_path / "out") == ["CHECK_INPUTS"]


# --- (c) leave-one-out on the four as a germline cohort ----------------------------------------


@pytest.fixture(scope="module")
def loo_run(nextflow_bin, germline):
    """The four BAMs as experimental rows of a TSV samplesheet, reference_mode leave-one-out,
    launched by `cnvkit-nf run`."""
    work, cohort = germline["work"] / "loo", germline["cohort"]
    work.mkdir()
    sheet = work / "germline.tsv"
    sheet.write_text("sample\tbam\trole\n" + "".join(
        f"{name}\t{bam}\texperimental\n" for name, bam in cohort.bams.items()))
    request = {"samplesheet": str(sheet), "reference_mode": "leave-one-out",
               "ref": str(cohort.ref), "bed": str(cohort.bed), "output_dir": str(work / "out")}
    (work / "request.json").write_text(json.dumps(request))
    result = launch(["run", str(work / "request.json")], work / "state", cwd=work)
    return {"result": result, "out": work / "out", "state": work / "state"}


def test_leave_one_out_equals_references_and_calls_by_hand(loo_run, germline):
    assert loo_run["result"].returncode == 0, loo_run["result"].stderr
    hand, coverages, out = germline["hand"], germline["coverages"], loo_run["out"]
    for name in coverages:
        others = [f for other, files in coverages.items() if other != name for f in files]
        hand.reference(others, f"{name}.reference.cnn")
        hand.tumour(name, f"{name}.reference.cnn")
        ours = out / "reference" / "leave-one-out" / f"{name}.reference.cnn"
        assert ours.read_text() == (hand.folder / f"{name}.reference.cnn").read_text(), name
        record = json.loads(ours.with_suffix(".json").read_text())
        assert sorted(record["controls"]) == sorted(set(coverages) - {name})
        assert_tumour_equal(out, hand.folder, name)
    assert not (out / "reference" / "reference.cnn").exists()
    assert "Leave-one-out: each sample was called against its own reference" in \
        (out / "report.html").read_text()
    tasks = int((out / "pipeline_info" / "tasks.txt").read_text())
    assert tasks == len(read_table(out / "pipeline_info" / "trace.tsv"))
    assert processes_run(out).count("CNVKIT_REFERENCE") == 4
    assert launch(["verify", str(out)], loo_run["state"]).returncode == 0
    listed = json.loads(launch(["cache", "list", "--json"], loo_run["state"]).stdout)
    assert listed["count"] == 0  # one reference per sample: none kept for reuse


# --- matched normals out of the pool (wiring: a stub run) -----------------------------------------


def test_unpooled_matched_normal_gets_no_coverage(nextflow_bin, tmp_path):
    """pool_matched_normals false: the matched normal only names its tumour's VCF column, so
    no coverage of it is computed (and the task count says so); the other control pools."""
    stub = ROOT / "tests" / "data" / "stub"
    rows = [{"bam": str(stub / "normal_B.sort.mkdup.bam"), "role": "control"},
            {"bam": str(stub / "normal_C.sort.mkdup.bam"), "role": "control"},
            {"bam": str(stub / "tumour_A.sort.mkdup.bam"), "role": "experimental",
             "normal": "normal_B"},
            {"bam": str(stub / "tumour_D.sort.mkdup.bam"), "role": "experimental"}]
    params = {"samples": rows, "pool_matched_normals": False, "experimental_inputs": [],
              "control_inputs": [], "output_dir": str(tmp_path / "out")}  # not the profile's
    (tmp_path / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, tmp_path, "-stub", "-params-file",
                          str(tmp_path / "params.json"), profile="test_stub,local")
    assert result.returncode == 0, result.stdout
    coverage = {path.name for path in (tmp_path / "out" / "coverage").iterdir()}
    assert {name.split(".")[0] for name in coverage} == {"normal_C", "tumour_A", "tumour_D"}
    out = tmp_path / "out"
    assert int((out / "pipeline_info" / "tasks.txt").read_text()) == \
        len(read_table(out / "pipeline_info" / "trace.tsv"))
