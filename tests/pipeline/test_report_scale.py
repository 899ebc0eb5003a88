"""The report at exome scale (hg38 lengths, 200,000 targets and as many antitargets): its QC
flags single out a deliberately noisy tumour where fixed limits flag every one, and a report
of 20 tumours stays a usable size and loads in Chromium in under 3 s."""

from __future__ import annotations

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


def write_sample(folder: Path, name: str, layout: pd.DataFrame, noise: float,
                 rng: np.random.Generator) -> tuple[Path, Path]:
    """A .cnr of `layout` with normal noise `noise` (antitargets 1.5 times it) and its .cns, a
    segment per chromosome at the mean."""
    scale = np.where(layout["gene"] == "Antitarget", 1.5 * noise, noise)
    cnr = layout.assign(depth=30.0, log2=rng.normal(0, scale).round(5), weight=0.9)
    cnr_path = folder / f"{name}.cnr"
    cnr.to_csv(cnr_path, sep="\t", index=False)
    segments = cnr.groupby("chromosome", sort=False).agg(
        start=("start", "min"), end=("end", "max"), log2=("log2", "mean"),
        probes=("log2", "size"), weight=("weight", "sum")).reset_index()
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
