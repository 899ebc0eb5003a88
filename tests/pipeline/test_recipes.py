"""The README's recipes run as written: each request, byte for byte from the README, is run by
`cnvkit-nf run` in a folder laid out as its paths say (bams/, ref/, vcf/), those files hard links
to generated cohorts. Each run must finish, verify, and show what its recipe is about; the
science of each shape is compared with hand-run CNVkit in test_sample_facts.py and
test_assays.py.

Three cohorts serve the seven recipes: a hybrid one (a male tumour at purity 0.6 with its VCF and
matched normal, a female sample, a female control), a whole-genome one and an amplicon one. The
runs go two at a time.
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scaffold.simulate import Event, SampleSpec, default_events, make_cohort
from tests.conftest import SMALL_CHROM, launch
from tests.pipeline.test_assays import dominant_copies
from tests.pipeline.test_sample_facts import read_table
from tests.test_readme_recipes import RECIPES, SHEETS

pytestmark = pytest.mark.e2e

CHROM = SMALL_CHROM
EXCLUDED = ("chr4", 100_000, 160_000)  # the wgs recipe's blacklist
# Which generated sample each recipe's BAM name stands for, per cohort.
HYBRID_NAMES = {
    "germline": {"P1": "Daughter", "P2": "Tumour", "P3": "NORMAL", "P4": "Control_F"},
    "tumour-only": {"T1": "Tumour", "N_a": "NORMAL", "N_b": "Control_F"},
    "tumour-normal": {"T1": "Tumour", "N1": "NORMAL"},
    "mixed-sex": {"Son": "Tumour", "Daughter": "Daughter", "Father": "NORMAL",
                  "Mother": "Control_F"},
    "hybrid-autobin": {"T1": "Tumour", "N1": "NORMAL", "N2": "Control_F"},
}
OTHER_NAMES = {"wgs": {"T1": "Daughter", "N1": "Control_M", "N2": "Control_F"},
               "amplicon": {"P1": "Tumour", "P2": "Daughter", "C1": "Control_M",
                            "C2": "Control_F"}}
NAMES = HYBRID_NAMES | OTHER_NAMES


CONTROL_F = SampleSpec("Control_F", "female", control=True)
DAUGHTER = SampleSpec("Daughter", "female", (Event("chr1", CHROM // 5, CHROM * 2 // 5, 1),))
# the hybrid cohort's tumour: purity 0.6, its VCF's column TUMOR beside its normal's (NORMAL),
# the default deletion and gain, and chr4 a copy-neutral loss of heterozygosity
TUMOUR = SampleSpec("Tumour", "male", (*default_events(CHROM), Event("chr4", 0, CHROM, 2, minor=0)),
                    purity=0.6, normal="NORMAL", vcf_sample="TUMOR")


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict:
    """Recipe name -> the cohort its BAM names stand for."""
    base = tmp_path_factory.mktemp("recipe_cohorts")
    hybrid = make_cohort(base / "hybrid", [SampleSpec("NORMAL", "male", control=True),
                                           CONTROL_F, TUMOUR, DAUGHTER],
                         reads_per_sample=60_000, seed=13, chrom_length=CHROM,
                         vcf_suffix=".vcf.gz")
    control_m = SampleSpec("Control_M", "male", control=True)
    wgs = make_cohort(base / "wgs", [control_m, CONTROL_F, DAUGHTER], reads_per_sample=100_000,
                      seed=7, chrom_length=CHROM, assay="wgs")
    amplicon = make_cohort(base / "amplicon",
                           [control_m, CONTROL_F, SampleSpec("Tumour", "male",
                                                             default_events(CHROM)), DAUGHTER],
                           reads_per_sample=40_000, seed=7, chrom_length=CHROM,
                           assay="amplicon")
    return {name: hybrid for name in HYBRID_NAMES} | {"wgs": wgs, "amplicon": amplicon}


def strings(value) -> list[str]:
    """Every string in a request's values, nested ones too."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) \
        else ()
    return [found for item in items for found in strings(item)]


def lay_out(recipe: str, cohort, folder: Path) -> dict:
    """The recipe's request, its samplesheet and its files under `folder`, as links to the
    cohort's; returns the request."""
    request = json.loads(RECIPES[recipe])
    if "samplesheet" in request:
        (folder / request["samplesheet"]).write_text(SHEETS[request["samplesheet"]])
    sources = {f"bams/{name}.bam": cohort.bams[sample] for name, sample in NAMES[recipe].items()}
    sources |= {"ref/genome.fa": cohort.ref, "ref/genes.gff3": cohort.annotation,
                "ref/targets.bed": cohort.bed, "ref/amplicons.bed": cohort.bed,
                "vcf/T1.vcf.gz": cohort.vcfs.get("Tumour")}
    wanted = set(strings(request)) | {
        row["bam"] for row in csv.DictReader(SHEETS.get(request.get("samplesheet"), "")
                                             .splitlines())}
    for name, source in sources.items():
        if name not in wanted:
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
        for index in (".bai", ".tbi"):
            if Path(f"{source}{index}").exists():
                os.link(f"{source}{index}", f"{target}{index}")
    if "ref/hg38-blacklist.v2.bed" in wanted:
        (folder / "ref" / "hg38-blacklist.v2.bed").write_text("\t".join(map(str, EXCLUDED))
                                                               + "\n")
    return request


def run_recipe(recipe: str, cohort, base: Path) -> dict:
    folder = base / recipe
    folder.mkdir()
    request = lay_out(recipe, cohort, folder)
    (folder / "request.json").write_text(RECIPES[recipe])
    done = launch(["run", "request.json"], folder / "state", cwd=folder)
    return {"result": done, "out": folder / request["output_dir"], "folder": folder,
            "cohort": cohort}


@pytest.fixture(scope="module")
def runs(cohorts, tmp_path_factory) -> dict:
    """Every recipe's run, two at a time (most of a run is waiting on task starts)."""
    base = tmp_path_factory.mktemp("recipes")
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_recipe, name, cohorts[name], base)
                   for name in RECIPES}
        return {name: future.result() for name, future in futures.items()}


def finished(runs: dict, recipe: str) -> Path:
    """The recipe run's results folder, once the run is known to have finished and verified."""
    run = runs[recipe]
    assert run["result"].returncode == 0, run["result"].stderr[-4000:]
    assert launch(["verify", str(run["out"])], run["folder"] / "state").returncode == 0
    assert (run["out"] / "report.html").stat().st_size > 0
    return run["out"]


def assert_events_called(runs: dict, recipe: str, samples: list[str]) -> None:
    """Each named sample's planted events are called as losses or gains (its generated
    sample's events): the copy number over most of each event is below 2 for a loss, above for
    a gain. The copy numbers themselves are compared with hand-run CNVkit elsewhere."""
    run, out = runs[recipe], finished(runs, recipe)
    planted = {spec.name: spec for spec in run["cohort"].samples}
    for name in samples:
        spec = planted[NAMES[recipe][name]]
        assert spec.events, name
        calls = out / "samples" / name / f"{name}.call.cns"
        for event in spec.events:
            called = dominant_copies(calls, event.chrom, event.start, event.end)
            assert (called > 2) - (called < 2) == (event.copies > 2) - (event.copies < 2), \
                (recipe, name, event, called)


def segment_log2(path: Path, chrom: str, start: int, end: int) -> float:
    """log2 of the segment that covers the middle of a region."""
    middle = (start + end) // 2
    (found,) = [float(row["log2"]) for row in read_table(path) if row["chromosome"] == chrom
                and int(row["start"]) <= middle < int(row["end"])]
    return found


def test_every_recipe_has_a_run(runs):
    assert set(runs) == set(RECIPES)


def test_germline_recipe_calls_each_sample_against_the_others(runs):
    assert_events_called(runs, "germline", ["P1", "P2"])
    loo = finished(runs, "germline") / "reference" / "leave-one-out"
    assert sorted(p.name for p in loo.glob("*.reference.cnn")) == \
        [f"P{i}.reference.cnn" for i in range(1, 5)]


def test_tumour_only_recipe_rescales_by_purity(runs):
    assert_events_called(runs, "tumour-only", ["T1"])
    sample = finished(runs, "tumour-only") / "samples" / "T1"
    deletion, gain = TUMOUR.events[:2]
    for event, copies in ((deletion, 1), (gain, 3)):  # call -m clonal --purity 0.6: exact
        region = (event.chrom, event.start, event.end)
        assert dominant_copies(sample / "T1.call.cns", *region) == copies
        # the calls' log2 rescaled for purity: a pure sample's, further from 0 than measured
        measured = segment_log2(sample / "T1.segmetrics.cns", *region)
        assert abs(segment_log2(sample / "T1.call.cns", *region)) > 1.3 * abs(measured)
    assert "0.6 (given for the sample)" in (sample.parent.parent / "report.html").read_text()


def test_tumour_normal_recipe_reads_the_allele_frequencies(runs):
    assert_events_called(runs, "tumour-normal", ["T1"])
    out = finished(runs, "tumour-normal")
    loh = [row for row in read_table(out / "samples" / "T1" / "T1.call.cns")
           if row["chromosome"] == "chr4"]
    assert loh and {(row["cn"], row["cn1"], row["cn2"]) for row in loh} == {("2", "2", "0")}
    assert "T1.vcf.gz: column TUMOR, the normal&#x27;s column NORMAL" in \
        (out / "report.html").read_text()


def test_mixed_sex_recipe_takes_each_stated_sex(runs):
    assert_events_called(runs, "mixed-sex", ["Son", "Daughter"])
    checks = {row["Sample"]: row["cnvkit_sex_check"] for row in
              read_table(finished(runs, "mixed-sex") / "cohort" / "cnvkit_mqc.tsv")}
    assert checks == dict.fromkeys(("Son", "Daughter", "Father", "Mother"), "ok")


def test_wgs_recipe_leaves_the_blacklist_out(runs):
    assert_events_called(runs, "wgs", ["T1"])
    out = finished(runs, "wgs")
    chrom, start, end = EXCLUDED
    bins = [line.split("\t") for line in (out / "reference" / "targets.bed").read_text()
            .splitlines()]
    assert bins and not [b for b in bins if b[0] == chrom and int(b[1]) < end
                         and int(b[2]) > start]
    assert json.loads((out / "reference" / "bin_sizes.json").read_text())["method"] == "wgs"


def test_amplicon_recipe_bins_from_the_data(runs):
    assert_events_called(runs, "amplicon", ["P1", "P2"])
    sizes = json.loads((finished(runs, "amplicon") / "reference" / "bin_sizes.json")
                       .read_text())
    assert (sizes["method"], sizes["target"]["from"], sizes["antitarget"]) == \
        ("amplicon", "autobin", {"from": "none"})


def test_hybrid_autobin_recipe_takes_batch_bin_sizes(runs):
    assert_events_called(runs, "hybrid-autobin", ["T1"])
    sizes = json.loads((finished(runs, "hybrid-autobin") / "reference" / "bin_sizes.json")
                       .read_text())
    assert sizes["target"]["from"] == sizes["antitarget"]["from"] == "autobin"
