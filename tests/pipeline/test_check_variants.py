"""Tests of bin/check_variants.py (through bin/check_inputs.py) on VCFs written by the simulator
and broken copies of them."""

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pysam
import pytest
from skgenome import tabio

from scaffold.simulate import Cohort, make_cohort, tumour_normal_samples
from tests.pipeline.test_check_inputs import CEILING, SCRIPT, _check_alone

COLUMNS = ["Tumour_1", "Normal_1"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """Tumour_1 with its matched normal Normal_1; Tumour_1.vcf.gz has both columns."""
    return make_cohort(tmp_path_factory.mktemp("variants"), tumour_normal_samples(60_000, (0.7,)),
                       reads_per_sample=6_000, seed=5, chrom_length=60_000,
                       vcf_suffix=".vcf.gz")  # fmt: skip


@pytest.fixture(scope="module")
def vcf_text(cohort: Cohort) -> str:
    with gzip.open(cohort.vcfs["Tumour_1"], "rt") as f:
        return f.read()


def check(ci: ModuleType, cohort: Cohort, vcf: Path, columns: list[str] = COLUMNS):
    """The input check of the cohort's reference and one VCF."""
    return ci.check_inputs(cohort.ref, None, {}, vcfs={"Tumour_1": vcf},
                           vcf_columns={"Tumour_1": columns})  # fmt: skip


def problems(report) -> list[tuple[str, str]]:
    return [(p.severity, p.message) for p in report.problems]


def edited(text: str, path: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """A plain VCF of the lines of `text` as `edit` changes them."""
    path.write_text("".join(edit(text.splitlines(keepends=True))))
    return path


def _header_end(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("#CHROM")) + 1


def test_the_simulated_vcfs_pass(check_inputs, cohort, vcf_text, tmp_path) -> None:
    plain = tmp_path / "Tumour_1.vcf"
    plain.write_text(vcf_text)
    records = sum(1 for _ in pysam.VariantFile(str(plain)))
    for vcf in (cohort.vcfs["Tumour_1"], plain):
        report = check(check_inputs, cohort, vcf)
        assert report.problems == []
        assert f"{vcf}: VCF with {records} records on 4 contigs; sample columns: Tumour_1, " \
               "Normal_1" in report.notes


def _no_fileformat(lines: list[str]) -> list[str]:
    return lines[1:]


def _no_chrom_line(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("#CHROM")]


def _malformed(lines: list[str]) -> list[str]:
    at = _header_end(lines)
    short = "\t".join(lines[at + 1].split("\t")[:4]) + "\n"
    bad_pos = lines[at + 2].replace("\t", "\tx", 1)
    return lines[:at + 1] + [short, bad_pos, "\n"] + lines[at + 3:]


BROKEN = {  # name: (edit, the problem)
    "no-fileformat": (_no_fileformat, "is not a VCF: its first line is not "
                                      "'##fileformat=VCF...' but '##FILTER=<ID=PASS,"
                                      "Description=\"All filte'"),
    "no-chrom-line": (_no_chrom_line, "has no '#CHROM' line before its first record (line 13): "
                                      "it is not a VCF, or its header was cut off"),
    "malformed": (_malformed, "has lines that cannot be read as VCF: line 15: 4 columns, the "
                              "'#CHROM' line has 11: 'chr1\\t{pos}\\t.\\tG', line 16: POS "
                              "'x{pos2}' is not a positive integer, line 17: blank"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_vcfs_are_refused_as_pysam_refuses_them(check_inputs, cohort, vcf_text,
                                                       tmp_path, name) -> None:
    edit, expected = BROKEN[name]
    vcf = edited(vcf_text, tmp_path / f"{name}.vcf", edit)
    lines = vcf_text.splitlines()
    at = _header_end(lines)
    expected = expected.format(pos=lines[at + 1].split("\t")[1], pos2=lines[at + 2].split("\t")[1])
    report = check(check_inputs, cohort, vcf)
    assert problems(report) == [("error", expected)]
    with pytest.raises((OSError, ValueError)):  # what CNVkit would meet, mid-job
        tabio.read(str(vcf), "vcf", sample_id="Tumour_1", normal_id="Normal_1")


def test_a_corrupt_or_truncated_gzip(check_inputs, cohort, tmp_path) -> None:
    data = cohort.vcfs["Tumour_1"].read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.vcf.gz"
    middle = len(data) // 2
    flipped.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64])
                        + data[middle + 64:])  # fmt: skip
    for vcf in (cut, flipped):
        (severity, message), = problems(check(check_inputs, cohort, vcf))
        assert severity == "error"
        assert message.startswith("is corrupt or truncated (a bad gzip stream after line ")
    # cut at a block's end: gzip reads all of it, and only the missing end block tells
    with pysam.BGZFile(str(cohort.vcfs["Tumour_1"]), "rb") as f:
        whole = f.read()
    blocks = tmp_path / "blocks.vcf.gz"
    with pysam.BGZFile(str(blocks), "wb") as out:
        out.write(whole)
    no_eof = tmp_path / "no-eof.vcf.gz"
    no_eof.write_bytes(blocks.read_bytes()[:-28])  # the empty end block is 28 bytes
    assert check(check_inputs, cohort, blocks).problems == []
    (severity, message), = problems(check(check_inputs, cohort, no_eof))
    lines = whole.decode().count("\n")
    assert (severity, message) == (
        "error", f"is truncated: its bgzip end-of-file block is missing after line {lines}")


def test_a_bam_or_an_empty_file_is_not_a_vcf(check_inputs, cohort, tmp_path) -> None:
    empty = tmp_path / "empty.vcf"
    empty.touch()
    assert problems(check(check_inputs, cohort, empty)) == [("error", "is empty")]
    (severity, message), = problems(check(check_inputs, cohort, cohort.bams["Tumour_1"]))
    assert severity == "error" and message.startswith("is not a VCF: its first line is not ")


def test_missing_and_repeated_sample_columns(check_inputs, cohort, vcf_text, tmp_path) -> None:
    report = check(check_inputs, cohort, cohort.vcfs["Tumour_1"], ["TUMOUR", "Normal_1", "N2"])
    assert problems(report) == [
        ("error", f"has no sample column {name!r} (its sample columns: Tumour_1, Normal_1): name "
                  "the sample's column as the VCF does (vcf_sample)")
        for name in ("TUMOUR", "N2")
    ]

    def twice(lines: list[str]) -> list[str]:
        return [line.replace("Normal_1", "Tumour_1") for line in lines]

    vcf = edited(vcf_text, tmp_path / "twice.vcf", twice)
    assert problems(check(check_inputs, cohort, vcf)) == [
        ("error", "has the sample column 'Tumour_1' 2 times; CNVkit needs it once"),
        ("error", "has no sample column 'Normal_1' (its sample columns: Tumour_1, Tumour_1): "
                  "name the sample's column as the VCF does (vcf_sample)"),
    ]
    with pytest.raises((OSError, ValueError)):
        pysam.VariantFile(str(vcf))

    def sites_only(lines: list[str]) -> list[str]:
        return [line if line.startswith("##") else "\t".join(line.split("\t")[:8]).rstrip("\n")
                + "\n" for line in lines]  # fmt: skip

    vcf = edited(vcf_text, tmp_path / "sites.vcf", sites_only)
    assert problems(check(check_inputs, cohort, vcf)) == [
        ("error", f"has no sample columns, so none named {name!r}: CNVkit takes the allele "
                  "counts from the sample's column") for name in COLUMNS]  # fmt: skip


def test_contigs_not_in_the_reference(check_inputs, cohort, vcf_text, tmp_path) -> None:
    def unprefixed(lines: list[str]) -> list[str]:
        return [line.removeprefix("chr") for line in lines]

    vcf = edited(vcf_text, tmp_path / "nochr.vcf", unprefixed)
    (severity, message), = problems(check(check_inputs, cohort, vcf))
    assert severity == "error"
    assert message == (
        f"no record's contig is in the reference {cohort.ref} (VCF: 1, 2, 3, ... (4 in all); "
        "reference: chr1, chr2, chr3, ... (6 in all)) (they differ in the 'chr' prefix): was it "
        "called on another reference?"
    )

    def chr3_renamed(lines: list[str]) -> list[str]:
        return [line.replace("chr3\t", "chr3_alt\t", 1) for line in lines]

    vcf = edited(vcf_text, tmp_path / "alt.vcf", chr3_renamed)
    n = sum(line.startswith("chr3\t") for line in vcf_text.splitlines())
    assert problems(check(check_inputs, cohort, vcf)) == [
        ("error", f"1 of 4 contigs of its records are not in the reference {cohort.ref} (e.g. "
                  f"chr3_alt; {n} records): give the VCF called on this reference, or keep its "
                  "contigs (bcftools view -t with the reference's contigs)")]


def test_unsorted_records_are_refused(check_inputs, cohort, vcf_text, tmp_path) -> None:
    def swapped(lines: list[str]) -> list[str]:
        at = _header_end(lines)
        return lines[:at] + [lines[at + 1], lines[at]] + lines[at + 2:]

    lines = vcf_text.splitlines()
    at = _header_end(lines)
    first, second = (lines[at + i].split("\t")[1] for i in (0, 1))
    report = check(check_inputs, cohort, edited(vcf_text, tmp_path / "swapped.vcf", swapped))
    assert problems(report) == [
        ("error", f"is not sorted: positions go back (line {at + 2}: chr1:{first} after "
                  f"chr1:{second}); sort it (bcftools sort) and check that it is the file you "
                  "meant to give")]

    def chr1_split(lines: list[str]) -> list[str]:
        at = _header_end(lines)
        body = lines[at:]
        chr2 = [line for line in body if line.startswith("chr2\t")]
        rest = [line for line in body if not line.startswith("chr2\t")]
        return lines[:at] + rest[:3] + chr2 + rest[3:]

    report = check(check_inputs, cohort, edited(vcf_text, tmp_path / "split.vcf", chr1_split))
    n_chr2 = sum(line.startswith("chr2\t") for line in lines)
    assert problems(report) == [
        ("error", f"is not sorted: its records of a contig are in more than one block (chr1 "
                  f"again at line {at + 4 + n_chr2}); check that it is not two VCFs run "
                  "together, then sort it (bcftools sort)")]


def test_no_records_is_a_warning(check_inputs, cohort, vcf_text, tmp_path) -> None:
    vcf = edited(vcf_text, tmp_path / "header.vcf", lambda ls: ls[:_header_end(ls)])
    assert problems(check(check_inputs, cohort, vcf)) == [
        ("warning", "has no records: CNVkit gets no allele fractions from it")]


def test_command_line_checks_each_vcf_once(cohort, vcf_text, tmp_path) -> None:
    joint = tmp_path / "joint.vcf"
    joint.write_text(vcf_text)
    broken = edited(vcf_text, tmp_path / "broken.vcf", _no_chrom_line)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--ref", str(cohort.ref),
         "--vcf", f"Tumour_1={joint}", "--vcf-columns", "Tumour_1=Tumour_1,Normal_1",
         "--vcf", f"Tumour_2={joint}", "--vcf-columns", "Tumour_2=Tumour_2,Normal_1",
         "--vcf", f"Tumour_3={broken}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert [(p["file"], p["message"][:40]) for p in report["problems"]] == [
        (str(joint), "has no sample column 'Tumour_2' (its sam"),
        (str(broken), "has no '#CHROM' line before its first re"),
    ]
    assert sum(note.startswith(f"{joint}: VCF with") for note in report["notes"]) == 1


def _vcf_of_many_contigs(path: Path) -> Path:
    """A gzip VCF of 1.6 MB: 300,000 records on as many contigs named by 1,000 bytes each."""
    head = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_bytes(gzip.compress(head + b"".join(b"%s%09d\t1\t.\tA\tC\t.\t.\t.\n"
                                                   % (b"A" * 991, n) for n in range(300_000)), 6))
    return path


def _vcf_of_bad_lines(path: Path) -> Path:
    """A gzip VCF of 10 KB: 5,000,000 lines that cannot be read."""
    head = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_bytes(gzip.compress(head + b"x\n" * 5_000_000, 9))
    return path


@pytest.mark.parametrize("make, expected", [
    (_vcf_of_many_contigs, "VCF has contig names of more than 8 MiB in all"),
    (_vcf_of_bad_lines, "has lines that cannot be read as VCF: line 3: 1 columns, the '#CHROM' "
                        "line has 8: 'x', line 4: 1 columns"),
])  # fmt: skip
def test_hostile_vcfs_are_read_in_bounded_memory(cohort, tmp_path, make, expected) -> None:
    vcf = make(tmp_path / "hostile.vcf.gz")
    assert vcf.stat().st_size < 2_000_000
    report, peak = _check_alone(["--ref", str(cohort.ref), "--vcf", f"T={vcf}"])
    assert peak <= CEILING, f"{peak / 1e6:.0f} MB"
    assert any(expected in p["message"] for p in report["problems"]), report["problems"]


def test_a_vcf_given_in_place_of_none_is_refused(check_inputs, cohort, tmp_path) -> None:
    missing = tmp_path / "missing.vcf"
    assert problems(check(check_inputs, cohort, missing)) == [("error", "does not exist")]
    folder = tmp_path / "folder.vcf"
    folder.mkdir()
    assert problems(check(check_inputs, cohort, folder)) == [("error", "is not a regular file")]


def test_a_header_alone_or_a_last_line_cut_short(check_inputs, cohort, vcf_text, tmp_path):
    meta_only = edited(vcf_text, tmp_path / "meta.vcf", lambda ls: ls[:_header_end(ls) - 1])
    assert problems(check(check_inputs, cohort, meta_only)) == [
        ("error", "has no '#CHROM' line: it is not a VCF, or its header was cut off")]
    cut = edited(vcf_text, tmp_path / "cut.vcf", lambda ls: [*ls[:-1], ls[-1][:-3]])
    lines = len(vcf_text.splitlines())
    assert problems(check(check_inputs, cohort, cut)) == [
        ("warning", f"its last line ({lines}) has no end of line: was the file cut short?")]
