"""The report at exome scale (hg38 lengths, 200,000 targets and as many antitargets): its QC
flags single out a deliberately noisy tumour where fixed limits flag every one, and a report
of 20 tumours stays a usable size and loads in Chromium in under 3 s."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_script

CNVKIT = str(Path(sys.executable).parent / "cnvkit.py")
HG38 = {**{f"chr{i}": n for i, n in enumerate(
    [248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
     138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
     83257441, 80373285, 58617616, 64444167, 46709983, 50818468], start=1)},
    "chrX": 156040895, "chrY": 57227415, "chrUn_KI270742v1": 186739,
    "chr1_KI270706v1_random": 175055}
TARGETS = 200_000
QUIET, NOISY, CONTROL = 0.45, 0.9, 0.35  # bin log2 noise (sd) of a low-depth exome


def bins(rng: np.random.Generator) -> pd.DataFrame:
    """200,000 targets of 200 bp spread over hg38 by length, an antitarget beside each."""
    names = list(HG38)
    share = np.array([HG38[c] for c in names], dtype=float)
    counts = rng.multinomial(TARGETS, share / share.sum())
    frames = []
    for chrom, count in zip(names, counts, strict=True):
        starts = np.sort(rng.choice(HG38[chrom] // 1000 - 2, count, replace=False)) * 1000
        gene = [f"G{chrom}_{i // 20}" for i in range(count)]
        target = pd.DataFrame({"chromosome": chrom, "start": starts, "end": starts + 200,
                               "gene": gene})
        anti = pd.DataFrame({"chromosome": chrom, "start": starts + 300, "end": starts + 950,
                             "gene": "Antitarget"})
        frames.append(pd.concat([target, anti]).sort_values("start", kind="stable"))
    return pd.concat(frames, ignore_index=True)


def per_chromosome(cnr: pd.DataFrame) -> pd.DataFrame:
    """A segment per chromosome of a .cnr table, at its bins' mean."""
    return cnr.groupby("chromosome", sort=False).agg(
        start=("start", "min"), end=("end", "max"), log2=("log2", "mean"),
        probes=("log2", "size"), weight=("weight", "sum")).reset_index()


def write_sample(folder: Path, name: str, layout: pd.DataFrame, noise: float,
                 rng: np.random.Generator) -> tuple[Path, Path]:
    """A .cnr of `layout` with normal noise `noise` (antitargets 1.5 times it) and its .cns, a
    segment per chromosome at the mean."""
    scale = np.where(layout["gene"] == "Antitarget", 1.5 * noise, noise)
    cnr = layout.assign(depth=30.0, log2=rng.normal(0, scale).round(5), weight=0.9)
    cnr_path = folder / f"{name}.cnr"
    cnr.to_csv(cnr_path, sep="\t", index=False)
    segments = per_chromosome(cnr)
    segments.insert(3, "gene", "-")
    cns_path = folder / f"{name}.cns"
    segments.to_csv(cns_path, sep="\t", index=False)
    return cnr_path, cns_path


def metrics(folder: Path, pairs: list[tuple[Path, Path]], out: str) -> Path:
    """`cnvkit.py metrics` of the samples, as the cohort stage runs it."""
    subprocess.run([CNVKIT, "metrics", *(p[0] for p in pairs), "-s", *(p[1] for p in pairs),
                    "-o", out], cwd=folder, check=True, capture_output=True)
    return folder / out


@pytest.fixture(scope="module")
def exome(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("exome_report")
    rng = np.random.default_rng(27)
    layout = bins(rng)
    tumours = [write_sample(folder, f"T{i}", layout, NOISY if i == 4 else QUIET, rng)
               for i in range(1, 7)]
    controls = [write_sample(folder, f"C{i}", layout, CONTROL, rng) for i in range(1, 4)]
    return {"folder": folder, "bins": len(layout), "tumours": tumours,
            "metrics": metrics(folder, tumours, "metrics.tsv"),
            "controls": metrics(folder, controls, "controls-metrics.tsv")}


def test_exome_flags_separate_the_noisy_tumour(exome):
    report, qc = load_script("cnvkit_report"), load_script("report_qc")
    tumours = report.metrics_of(exome["metrics"])
    panel = report.metrics_of(exome["controls"])
    assert exome["bins"] == 2 * TARGETS
    fixed = qc.limits("hybrid", exome["bins"], {})
    assert all(qc.over_limits(values, fixed) for values in tumours.values())  # all fail
    limits = qc.limits("hybrid", exome["bins"], panel)
    outliers = qc.outliers(tumours)
    flagged = {name for name, values in tumours.items()
               if qc.over_limits(values, limits) + outliers[name]}
    assert flagged == {"T4"}
    assert outliers["T4"] and qc.over_limits(tumours["T4"], limits)  # both ways
    assert limits["segments"].value == 400  # a segment per 1,000 of the 400,000 bins


TUMOURS = 20
CALLED = {"chr1": 3, "chr2": 1, "chr5": 4, "chr7": 3, "chr9": 0, "chr12": 3, "chr17": 1,
          "chr19": 3}  # a tumour's calls: whole chromosomes at these copy numbers


def called(ratios: Path, folder: Path, name: str) -> Path:
    """A .call.cns for `ratios`: each chromosome one segment, at the copy number of CALLED (its
    bins shifted to fit), else 2; chrX and chrY at one copy (a male: expected states)."""
    cnr = pd.read_csv(ratios, sep="\t")
    shift = {c: np.log2(max(n, 0.5) / 2) for c, n in {**CALLED, "chrX": 1, "chrY": 1}.items()}
    cnr["log2"] = (cnr["log2"] + cnr["chromosome"].map(shift).fillna(0)).round(5)
    cnr.to_csv(ratios, sep="\t", index=False)
    segments = per_chromosome(cnr)
    segments.insert(3, "gene", [",".join(sorted(set(g))[:40]) for _, g in
                                cnr[cnr["gene"] != "Antitarget"].groupby(
                                    "chromosome", sort=False)["gene"]])
    segments["ci_lo"], segments["ci_hi"] = segments["log2"] - 0.02, segments["log2"] + 0.02
    segments["cn"] = [CALLED.get(c, 1 if c in ("chrX", "chrY") else 2)
                      for c in segments["chromosome"]]
    path = folder / f"{name}.call.cns"
    segments.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture(scope="module")
def big_report(exome, artefacts) -> dict:
    """The report of 20 tumours at exome scale: one tumour's plots drawn by the pipeline's
    scripts (sample_plots.py, diagram_image.py), its files given to each of the 20."""
    folder = exome["folder"] / "twenty"
    folder.mkdir()
    ratios = folder / "T01.cnr"
    ratios.write_bytes(exome["tumours"][0][0].read_bytes())
    calls = called(ratios, folder, "T01")
    plots, diagram = load_script("sample_plots"), load_script("diagram_image")
    gene = "Gchr7_3"
    assert plots.main([str(ratios), "-s", str(calls), "--call-options=", "--genes", gene,
                       "-o", str(folder / "T01")]) == 0
    assert diagram.main(["-s", str(calls), "-o", str(folder / "T01-diagram.pdf")]) == 0
    drawn = sorted(p.name.removeprefix("T01") for p in folder.glob("T01-*")
                   if p.suffix in (".png", ".svg"))
    assert len(drawn) == 1 + len(CALLED) + 1 + 1, drawn  # genome, chromosomes, gene, diagram
    (folder / "sex").mkdir()
    (folder / "cohort").mkdir()
    names = [f"T{i:02d}" for i in range(1, TUMOURS + 1)]
    for name in names[1:]:
        for suffix in [*drawn, ".call.cns"]:
            (folder / f"{name}{suffix}").write_bytes((folder / f"T01{suffix}").read_bytes())
    (folder / "cohort" / "metrics.tsv").write_text(
        "sample\tsegments\tstdev\tmad\tiqr\tbivar\n"
        + "".join(f"{n}.cnr\t26\t0.57\t0.54\t0.73\t0.56\n" for n in names))
    (folder / "sex" / "sex.tsv").write_text(
        "sample\tsex\tX_logratio\tY_logratio\n"
        + "".join(f"{n}.targetcoverage.cnn\tMale\t-1\t-1\n" for n in names))
    (folder / "reference-sex.tsv").write_text("sample\tsex\tX_logratio\tY_logratio\n"
                                              "reference.cnn\tFemale\t0\t-10\n")
    (folder / "job.json").write_text(json.dumps({
        "job": {"run_name": "exome", "submitted": datetime.datetime.now(
            datetime.UTC).isoformat(), "request": {"genes_of_interest": [gene]}},
        "pipeline": "0.1.0", "nextflow": "24.10.0"}))
    (folder / "results.txt").write_text("".join(
        f"samples/{n}/{n}{suffix}\n" for n in names for suffix in (".cnr", ".call.cns")))
    report = load_script("cnvkit_report")
    assert report.main([
        "--job", str(folder / "job.json"), "--results", str(folder / "results.txt"),
        "--sex", str(folder / "sex" / "sex.tsv"),
        "--reference-sex", str(folder / "reference-sex.tsv"),
        "--metrics", str(folder / "cohort" / "metrics.tsv"),
        "--calls", *(str(folder / f"{n}.call.cns") for n in names),
        "--ratios", str(ratios), "--scatters", *(str(folder / f"{n}-scatter.png") for n in names),
        "--panels", *(str(folder / f"{n}{s}") for n in names for s in drawn
                      if s != "-scatter.png"),
        "--html", str(folder / "report.html"), "--multiqc", str(folder / "cnvkit_mqc.tsv")]) == 0
    return {"page": folder / "report.html", "names": names, "gene": gene,
            "artefacts": artefacts}


def test_twenty_exome_tumours_give_a_usable_report(big_report, browser):
    page = big_report["page"]
    size = page.stat().st_size
    print(f"report of {TUMOURS} exome tumours: {size / 1e6:.1f} MB")
    assert size < 30e6
    visit = browser.visit(page.as_uri(), full_page=False)
    (big_report["artefacts"] / "report-20-exome-tumours.png").write_bytes(visit.screenshot)
    print(f"loaded in Chromium in {visit.load_ms:.0f} ms")
    assert 0 < visit.load_ms < 3000
    assert visit.failed == [] and visit.console_errors == []
    assert [url for url in visit.requests if not url.startswith(("data:", "file:"))] == []
    assert visit.text.count(f"Calls ({len(CALLED)})") == TUMOURS
    assert visit.text.count("Expected states (2), not calls") == TUMOURS
