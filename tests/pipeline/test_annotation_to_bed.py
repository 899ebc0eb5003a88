"""Tests of bin/annotation_to_bed.py, including CNVkit's use of its output."""

import gzip
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from scaffold.simulate import Cohort

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "annotation_to_bed.py"
CNVKIT = Path(sys.executable).parent / "cnvkit.py"


def gff(chrom: str, kind: str, start: int, end: int, attrs: str) -> str:
    return f"{chrom}\tHAVANA\t{kind}\t{start}\t{end}\t.\t+\t.\t{attrs}\n"


GENES = {
    "ENST10.1": ("ENSG10.3", "TEN"),
    "ENST2.1": ("ENSG2.1", "TWO"),
    "ENST2.2": ("ENSG2.1", "TWO"),
}


def gencode(chrom: str, kind: str, start: int, end: int, tx: str) -> str:
    """A GENCODE-style GFF3 line: IDs first, gene_id before gene_name."""
    gene, symbol = GENES[tx]
    about = f"gene_id={gene};gene_type=protein_coding;gene_name={symbol}"
    if kind == "gene":
        return gff(chrom, kind, start, end, f"ID={gene};{about};level=2")
    if kind == "transcript":
        return gff(chrom, kind, start, end, f"ID={tx};Parent={gene};{about};transcript_id={tx}")
    return gff(chrom, kind, start, end, f"ID={kind}:{tx}:{start};Parent={tx};{about}")


# Unsorted on purpose; two transcripts of TWO share an exon; CDS lines are ignored.
GENCODE_GFF3 = "##gff-version 3\n#description: test\n##sequence-region chr2 1 100000\n" + "".join(
    gencode(*row)
    for row in [
        ("chr10", "gene", 1001, 3000, "ENST10.1"),
        ("chr10", "transcript", 1001, 3000, "ENST10.1"),
        ("chr10", "exon", 1001, 1200, "ENST10.1"),
        ("chr10", "CDS", 1051, 1200, "ENST10.1"),
        ("chr2", "gene", 501, 900, "ENST2.1"),
        ("chr2", "transcript", 501, 900, "ENST2.1"),
        ("chr2", "exon", 801, 900, "ENST2.1"),
        ("chr2", "exon", 501, 600, "ENST2.1"),
        ("chr2", "transcript", 501, 600, "ENST2.2"),
        ("chr2", "exon", 501, 600, "ENST2.2"),
    ]
)
GENCODE_ROWS = "chr2\t500\t600\tTWO\nchr2\t800\t900\tTWO\nchr10\t1000\t1200\tTEN\n"

GTF = (
    'chr1\tHAVANA\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG223972.5"; gene_name "DDX11L1";\n'
    'chr1\tHAVANA\texon\t11869\t12227\t.\t+\t.\tgene_id "ENSG223972.5"; '
    'transcript_id "ENST456328.2"; gene_name "DDX11L1"; exon_number 1; level 2;\n'
    'chr1\tHAVANA\texon\t12613\t12721\t.\t+\t.\tgene_id "ENSG9"; transcript_id "ENST9";\n'
)
GTF_ROWS = "chr1\t11868\t12227\tDDX11L1\nchr1\t12612\t12721\tENSG9\n"

REFFLAT = "DDX11L1\tNR_046018\tchr1\t+\t11873\t14409\t14409\t14409\t2\t11873,13220,\t12227,14409,\n"
GENEPRED = REFFLAT.split("\t", 1)[1]


def convert(module: ModuleType, tmp_path: Path, text: str | bytes, name: str = "in") -> str:
    src, out = tmp_path / name, tmp_path / f"{name}.out.bed"
    src.write_bytes(text if isinstance(text, bytes) else text.encode())
    module.convert(src, out)
    return out.read_text()


def test_gencode_gff3_gives_symbols_sorted(annotation_to_bed, tmp_path) -> None:
    assert annotation_to_bed.sniff_format(tmp_path / "x") is None  # missing file
    bed = convert(annotation_to_bed, tmp_path, GENCODE_GFF3)
    assert bed == GENCODE_ROWS and "ENSG" not in bed


def test_gzipped_gff3_and_gtf(annotation_to_bed, tmp_path) -> None:
    assert convert(annotation_to_bed, tmp_path, gzip.compress(GENCODE_GFF3.encode()), "a.gz") == (
        GENCODE_ROWS
    )
    assert convert(annotation_to_bed, tmp_path, GTF, "b.gtf") == GTF_ROWS
    assert convert(annotation_to_bed, tmp_path, gzip.compress(GTF.encode()), "c.gtf.gz") == GTF_ROWS


def test_ensembl_gff3_names_come_from_the_parent_gene(annotation_to_bed, tmp_path) -> None:
    text = (
        "##gff-version 3\n"
        + gff("1", "gene", 11869, 14409, "ID=gene:ENSG1;Name=DDX11L1;gene_id=ENSG1")
        + gff("1", "mRNA", 11869, 14409, "ID=transcript:ENST1;Parent=gene:ENSG1;Name=DDX11L1-202")
        + gff("1", "exon", 11869, 12227, "Parent=transcript:ENST1;Name=ENSE1;exon_id=ENSE1")
    )
    assert convert(annotation_to_bed, tmp_path, text) == "1\t11868\t12227\tDDX11L1\n"


def test_genes_only_gff3(annotation_to_bed, tmp_path) -> None:
    text = "##gff-version 3\n" + gff("chr1", "gene", 11, 20, "ID=g1;Name=ABC") + gff(
        "chr1", "gene", 1, 5, "ID=g2;gene=XYZ"
    )  # fmt: skip
    assert convert(annotation_to_bed, tmp_path, text) == "chr1\t0\t5\tXYZ\nchr1\t10\t20\tABC\n"


def test_refflat_and_genepred(annotation_to_bed, tmp_path) -> None:
    exons = "chr1\t11873\t12227\t{0}\nchr1\t13220\t14409\t{0}\n"
    assert convert(annotation_to_bed, tmp_path, REFFLAT, "a") == exons.format("DDX11L1")
    assert convert(annotation_to_bed, tmp_path, GENEPRED, "b") == exons.format("NR_046018")


def test_bed_passthrough(annotation_to_bed, tmp_path) -> None:
    text = "track name=genes\nchr2\t5\t10\tB\t0\t+\nchr1\t1\t3\tA\t0\t-\nchr1\t0\t1\n"
    assert (
        convert(annotation_to_bed, tmp_path, text)
        == "chr1\t0\t1\t-\nchr1\t1\t3\tA\nchr2\t5\t10\tB\n"
    )


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (GENCODE_GFF3, "gff3"),
        (GENCODE_GFF3.replace("##gff-version 3\n", ""), "gff3"),
        (GTF, "gtf"),
        (REFFLAT, "refflat"),
        (GENEPRED, "genepred"),
        ("chr1\t1\t2\n", "bed"),
        ("@HD\tVN:1.6\n@SQ\tSN:chr1\tLN:9\nchr1\t1\t5\t+\tt1\n", None),
        ("hello world\n", None),
        ("", None),
        (GTF + "chr1\t1\t2\n", None),
    ],
    ids=["gff3", "gff3-no-header", "gtf", "refflat", "genepred", "bed", "interval-list",
         "text", "empty", "mixed"],
)  # fmt: skip
def test_sniff_format(annotation_to_bed, tmp_path, text, fmt) -> None:
    path = tmp_path / "f"
    path.write_text(text)
    assert annotation_to_bed.sniff_format(path) == fmt


def test_command_line(tmp_path) -> None:
    src = tmp_path / "in.gff3"
    src.write_text(GENCODE_GFF3)
    ok = subprocess.run([SCRIPT, src, tmp_path / "o.bed"], capture_output=True, text=True)
    assert ok.returncode == 0 and "wrote 3 regions" in ok.stderr
    assert (tmp_path / "o.bed").read_text() == GENCODE_ROWS
    src.write_text("hello\n")
    bad = subprocess.run([SCRIPT, src, tmp_path / "p.bed"], capture_output=True, text=True)
    assert bad.returncode == 1 and "not a recognised annotation format" in bad.stderr
    src.write_text("chr1\t1\t2\tA\n" * 25 + "chr1\tx\t2\tB\n")
    bad = subprocess.run([SCRIPT, src, tmp_path / "p.bed"], capture_output=True, text=True)
    assert bad.returncode == 1 and "cannot be read as BED" in bad.stderr


def test_cnvkit_target_uses_the_symbols(annotation_to_bed, small_cohort: Cohort, tmp_path) -> None:
    genes_bed, targets = tmp_path / "genes.bed", tmp_path / "targets.bed"
    annotation_to_bed.convert(small_cohort.annotation, genes_bed)
    cmd = [CNVKIT, "target", small_cohort.bed, "--annotate", genes_bed, "-o", targets]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [line.split("\t") for line in targets.read_text().splitlines()]
    assert len(rows) >= len(small_cohort.bed.read_text().splitlines())
    for chrom, start, end, name in rows:
        assert re.fullmatch(r"GENE\d+", name.strip())
        gene_chrom, gene_start, gene_end = small_cohort.genes[name.strip()]
        assert gene_chrom == chrom and gene_start <= int(start) < int(end) <= gene_end
