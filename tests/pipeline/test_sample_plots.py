"""The per-tumour plots and tables beside CNVkit's own lines (bin/sample_plots.py,
bin/diagram_image.py, bin/genes_of_interest.py), on an exome-sized tumour synthesized here:
~200,000 target and antitarget bins on hg38's names (with unplaced contigs), a male sample with
a gain on chr7 (over EGFR) and one copy of chrX and chrY, called by the real `cnvkit.py call`."""

from __future__ import annotations

import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

BIN = Path(__file__).resolve().parents[2] / "bin"
sys.path.insert(0, str(BIN))

import diagram_image  # noqa: E402 - beside the stage script, as cnvkit_stage.py imports them
import genes_of_interest  # noqa: E402
import sample_plots  # noqa: E402

CNVKIT = [sys.executable, "-m", "cnvlib.cnvkit"]
# hg38's primary chromosomes (Mb), and two of its unplaced contigs
SIZES = {**{f"chr{n}": size for n, size in enumerate(
    (248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59,
     64, 47, 51), start=1)}, "chrX": 156, "chrY": 57}
UNPLACED = {"chr1_KI270706v1_random": 175_055, "chrUn_GL000195v1": 182_896}
STEP = 30_000  # a target and an antitarget bin every 30 kb: ~200,000 bins
GAIN = ("chr7", 50_000_000, 60_000_000)  # log2 0.58, 3 copies
EGFR = ("chr7", 55_019_000, 55_211_000)  # its bins are named EGFR
MALE = "-x male"


def synthesize(folder: Path) -> dict[str, Path]:
    """A tumour's .cnr, .cns and (by `cnvkit.py call -x male`) .call.cns in `folder`."""
    rng = np.random.default_rng(27)
    cnr_rows, cns_rows = [], []
    contigs = {**{name: size * 1_000_000 for name, size in SIZES.items()}, **UNPLACED}
    for chrom, size in contigs.items():
        step = STEP if size > STEP * 4 else size // 4
        starts = np.arange(0, size - step, step)
        level = -1.0 if chrom == "chrX" else 0.0  # a male against a female reference (call's
        #                                            default): one chrX and one chrY copy
        for i, start in enumerate(starts):
            end = start + 200
            inside = chrom == GAIN[0] and GAIN[1] <= start < GAIN[2]
            log2 = level + (0.58 if inside else 0.0)
            gene = ("EGFR" if chrom == EGFR[0] and EGFR[1] <= start < EGFR[2]
                    else f"{chrom}_G{i // 10}")
            if gene == "EGFR" and start == EGFR[1] + STEP:
                gene = "EGFR,EGFR-AS1"  # a bin CNVkit names with two genes
            cnr_rows.append((chrom, start, end, gene, 100.0,
                             log2 + rng.normal(0, 0.15), 0.9))
            anti = start + step // 2
            cnr_rows.append((chrom, anti, anti + step // 3, "Antitarget", 5.0,
                             log2 + rng.normal(0, 0.35), 0.4))
        cuts = [0, *(GAIN[1:] if chrom == GAIN[0] else ()), size]
        for start, end in zip(cuts, cuts[1:], strict=False):
            inside = chrom == GAIN[0] and start == GAIN[1]
            cns_rows.append((chrom, start, end, "EGFR" if inside else "-",
                             level + (0.58 if inside else 0.0), 100.0,
                             int((end - start) // step) * 2, 100.0))
    paths = {kind: folder / f"T1.{kind}" for kind in ("cnr", "cns", "call.cns")}
    write(paths["cnr"], ("chromosome", "start", "end", "gene", "depth", "log2", "weight"),
          cnr_rows)
    write(paths["cns"], ("chromosome", "start", "end", "gene", "log2", "depth", "probes",
                         "weight"), cns_rows)
    subprocess.run([*CNVKIT, "call", str(paths["cns"]), *MALE.split(), "-o",
                    str(paths["call.cns"])], check=True, capture_output=True)
    return paths


def write(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n")
        handle.writelines("\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row)
                          + "\n" for row in rows)


@pytest.fixture(scope="module")
def tumour(tmp_path_factory) -> dict[str, Path]:
    return synthesize(tmp_path_factory.mktemp("tumour"))


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk (after its 8-byte signature)."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_synthetic_calls(tumour):
    """The premise: call made chr7's gain 3 copies, chrX and chrY 1 (the male's expected)."""
    with tumour["call.cns"].open() as handle:
        cn = {(row["chromosome"], row["start"]): row["cn"]
              for row in csv.DictReader(handle, delimiter="\t")}
    assert cn[("chr7", str(GAIN[1]))] == "3"
    assert cn[("chrX", "0")] == "1" and cn[("chrY", "0")] == "1"
    assert cn[("chr1", "0")] == "2"


def test_sample_plots(tumour, tmp_path, capsys):
    prefix = tmp_path / "T1"
    status = sample_plots.main([str(tumour["cnr"]), "-s", str(tumour["call.cns"]),
                                f"--call-options={MALE}", "--genes", "EGFR,TP53,NOSUCHGENE",
                                "-o", str(prefix)])
    assert status == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["T1-chromosome-chr7-scatter.png", "T1-gene-EGFR-scatter.png",
                       "T1-scatter.png"]  # no chrX/chrY panel: one copy is a male's expected
    width, height = png_size(tmp_path / "T1-scatter.png")
    assert width >= 1500 and 400 <= height < width / 3  # 20 x 5 in, less the bare margins
    for name in written:
        assert png_size(tmp_path / name)[0] >= 400
        assert (tmp_path / name).read_bytes()[25] == 6  # IHDR's colour type: CNVkit's RGBA
    err = capsys.readouterr().err
    assert "leaves out 2 contig(s)" in err
    assert all(name in err.splitlines()[0] for name in UNPLACED)


def test_a_plot_that_fails_is_skipped(tumour, tmp_path, capsys):
    """A VCF that cannot be read fails every panel with the BAF: each is named, none left."""
    prefix = tmp_path / "T1"
    assert sample_plots.main([str(tumour["cnr"]), "-s", str(tumour["call.cns"]),
                              f"--call-options={MALE}", "-v", str(tmp_path / "none.vcf"),
                              "-i", "T1", "-o", str(prefix)]) == 0
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "T1-scatter.png not drawn" in err and "T1-chromosome-chr7-scatter.png not drawn" in err


def test_diagram_image(tumour, tmp_path):
    pdf = tmp_path / "T1-diagram.pdf"
    assert diagram_image.main(["-s", str(tumour["call.cns"]), "-x", "male",
                               "-o", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    root = ET.parse(tmp_path / "T1-diagram.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {"".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"chr7", "EGFR", "Gain"} <= texts  # the gained chromosome, its gene, the legend
    assert "chrX" not in texts  # the male's one copy is no change (-x male), as in the PDF


def test_genes_of_interest(tumour, tmp_path):
    """Each gene's values are genemetrics -t 0 -m 1's, run by hand; its cn and call from the
    calls; a gene no bin names is listed as such."""
    out = tmp_path / "T1.genes_of_interest.tsv"
    assert genes_of_interest.main([str(tumour["cnr"]), "-s", str(tumour["cns"]),
                                   "--call-cns", str(tumour["call.cns"]),
                                   f"--call-options={MALE}", "-x", "male",
                                   "--genes", "EGFR,chrX_G3,chr2_G5,NOSUCHGENE",
                                   "-o", str(out)]) == 0
    by_hand = tmp_path / "genemetrics.tsv"
    subprocess.run([*CNVKIT, "genemetrics", str(tumour["cnr"]), "-s", str(tumour["cns"]),
                    "-t", "0", "-m", "1", "-x", "male", "-o", str(by_hand)],
                   check=True, capture_output=True)
    with by_hand.open() as handle:
        expected = list(csv.DictReader(handle, delimiter="\t"))
    with out.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == [*expected[0], "cn", "call", "note"]
    found = {(row["gene"], row["start"]): row for row in rows}
    for row in expected:
        if {"EGFR", "chrX_G3", "chr2_G5"} & set(row["gene"].split(",")):
            assert {key: found[row["gene"], row["start"]][key] for key in row} == row
    egfr = [row for row in rows if "EGFR" in row["gene"].split(",")]
    assert egfr and {(row["cn"], row["call"]) for row in egfr} == {("3", "yes")}
    assert egfr[0]["probes"] == "13"  # its 7 target bins and the 6 antitargets between them
    assert (found["chrX_G3", "900000"]["cn"], found["chrX_G3", "900000"]["call"]) == (
        "1", "expected state")
    assert found["chr2_G5", "1500000"]["call"] == "no"
    assert rows[-1] == {**dict.fromkeys(rows[0], ""), "gene": "NOSUCHGENE",
                        "note": "not in the targets or annotation"}
