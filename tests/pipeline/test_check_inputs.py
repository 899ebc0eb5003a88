"""Tests of bin/check_inputs.py on a simulated cohort and broken copies of its files."""

import gzip
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pysam
import pytest

from cnvkit_nf.contract.confs import SUBSTEP_OF_FIELD
from cnvkit_nf.launch import local_files
from scaffold.simulate import Cohort
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "check_inputs.py"


def run(ci: ModuleType, cohort: Cohort, **changes: object):
    """Check the cohort's inputs, with some of them replaced."""
    inputs = {"ref": cohort.ref, "bed": cohort.bed, "bams": dict(cohort.bams)} | changes
    return ci.check_inputs(**inputs)


def errors(report) -> list[str]:
    return [f"{p.file}: {p.message}" for p in report.problems if p.severity == "error"]


def only_error(report) -> str:
    """The message of the single problem, which must be an error."""
    assert [p.severity for p in report.problems] == ["error"], report.problems
    return report.problems[0].message


def reheader(src: Path, dest: Path, edit: Callable[[str], str]) -> Path:
    """Copy of a BAM with an edited header."""
    sam = dest.with_suffix(".header.sam")
    sam.write_text(edit(pysam.view("-H", "--no-PG", str(src))))
    with open(dest, "wb") as out:
        subprocess.run(["samtools", "reheader", "--no-PG", str(sam), str(src)], stdout=out,
                       check=True)  # fmt: skip
    return dest


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def bam(small_cohort: Cohort) -> Path:
    return small_cohort.bams["Sample_1"]


def test_good_cohort_passes(check_inputs: ModuleType, small_cohort: Cohort) -> None:
    report = run(check_inputs, small_cohort, annotation=small_cohort.annotation)
    assert report.ok and report.problems == []
    assert any("annotation format GFF3" in n for n in report.notes)
    assert any("BED with" in n for n in report.notes)


def test_name_sorted_bam(check_inputs, small_cohort, bam, tmp_path) -> None:
    sorted_by_name = tmp_path / "byname.bam"
    pysam.sort("-n", "-o", str(sorted_by_name), str(bam))
    report = run(check_inputs, small_cohort, bams={"S": sorted_by_name})
    assert only_error(report) == (
        "not coordinate-sorted (SO:queryname); sort it with `samtools sort`"
    )
    assert report.problems[0].file == str(sorted_by_name)


def test_unsorted_header(check_inputs, small_cohort, bam, tmp_path) -> None:
    unsorted = reheader(
        bam, tmp_path / "u.bam", lambda h: h.replace("SO:coordinate", "SO:unsorted")
    )
    msg = only_error(run(check_inputs, small_cohort, bams={"S": unsorted}))
    assert msg.startswith("not coordinate-sorted (SO:unsorted)")


def test_no_duplicate_marking(check_inputs, small_cohort, bam, tmp_path) -> None:
    def drop_markdup(header: str) -> str:
        return "".join(line for line in header.splitlines(True) if "markdup" not in line)

    plain = reheader(bam, tmp_path / "plain.bam", drop_markdup)
    unflagged = tmp_path / "unflagged.bam"  # the reads' duplicate flags would pass (issue 25)
    pysam.view("--remove-flags", "1024", "-b", "-o", str(unflagged), str(plain),
               catch_stdout=False)  # fmt: skip
    msg = only_error(run(check_inputs, small_cohort, bams={"S": unflagged}))
    assert msg.startswith("duplicates are not marked or removed")
    assert "samtools markdup" in msg and "MarkDuplicates" in msg and "sambamba" in msg


def _sam(bam: Path, dest: Path) -> Path:
    pysam.view("-h", "-O", "SAM", "-o", str(dest), str(bam), catch_stdout=False)
    return dest


def _cram(bam: Path, dest: Path, ref: Path) -> Path:
    pysam.view("-C", "-T", str(ref), "-o", str(dest), str(bam), catch_stdout=False)
    return dest


def _truncated(bam: Path, dest: Path) -> Path:
    dest.write_bytes(bam.read_bytes()[: bam.stat().st_size // 2])
    return dest


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda bam, d, ref: write(d, "just some text\n"), "is a text file, not a BAM file"),
        (lambda bam, d, ref: _sam(bam, d), "is a SAM text file, not BAM"),
        (lambda bam, d, ref: _cram(bam, d, ref), "is a CRAM file named .bam; name it .cram"),
        (lambda bam, d, ref: _truncated(bam, d), "is truncated"),
        (lambda bam, d, ref: d.write_bytes(os.urandom(5000)) and d, "not a BAM file"),
        (lambda bam, d, ref: d.write_bytes(gzip.compress(b"x" * 100)) and d, "not BGZF"),
        (lambda bam, d, ref: write(d, ""), "is empty"),
    ],
    ids=["text", "sam", "cram", "truncated", "random", "gzip", "empty"],
)
def test_not_a_bam(check_inputs, small_cohort, bam, tmp_path, make, expected) -> None:
    fake = make(bam, tmp_path / "fake.bam", small_cohort.ref)
    assert expected in only_error(run(check_inputs, small_cohort, bams={"S": fake}))


def test_missing_bam(check_inputs, small_cohort, tmp_path) -> None:
    report = run(check_inputs, small_cohort, bams={"S": tmp_path / "nope.bam"})
    assert errors(report) == [f"{tmp_path / 'nope.bam'}: does not exist"]
    report = run(check_inputs, small_cohort, bams={"S": "./nope.bam"})
    assert errors(report) == ["./nope.bam: does not exist"]  # exactly as given


def test_contig_names_differ(check_inputs, small_cohort, bam, tmp_path) -> None:
    renamed = reheader(bam, tmp_path / "r.bam", lambda h: h.replace("SN:chr", "SN:"))
    msg = only_error(run(check_inputs, small_cohort, bams={"S": renamed}))
    assert msg.startswith("no contig name in common with the reference")
    assert "BAM: 1, 2, 3, ... (6 in all)" in msg and "'chr' prefix" in msg


def test_contig_length_differs(check_inputs, small_cohort, bam, tmp_path) -> None:
    longer = reheader(bam, tmp_path / "l.bam", lambda h: h.replace("LN:300000", "LN:300001", 1))
    msg = only_error(run(check_inputs, small_cohort, bams={"S": longer}))
    assert "contig lengths differ" in msg and "chr1 (BAM 300001, reference 300000)" in msg


def test_contigs_on_one_side_only_are_a_warning(check_inputs, small_cohort, bam, tmp_path):
    extra = reheader(bam, tmp_path / "e.bam", lambda h: h + "@SQ\tSN:chrUn_1\tLN:5000\n")
    ref = tmp_path / "ref.fa"
    ref.write_text(Path(small_cohort.ref).read_text() + ">chrM\nACGTACGTAC\n")
    report = run(check_inputs, small_cohort, ref=ref, bams={"S": extra})
    assert report.ok
    [warning] = [p for p in report.problems if p.file == str(extra)]
    assert warning.severity == "warning"
    assert "only in the BAM: chrUn_1; only in the reference: chrM" in warning.message
    assert not [p for p in run(check_inputs, small_cohort, bams={"S": bam}).problems]


def test_missing_or_stale_index_is_a_note(check_inputs, small_cohort, bam, tmp_path) -> None:
    copy = Path(shutil.copy(bam, tmp_path / "s.bam"))
    note = f"{copy}: no up-to-date index (.bai) next to it; the index will be built"
    report = run(check_inputs, small_cohort, bams={"S": copy})
    assert report.ok and report.problems == [] and note in report.notes
    index = Path(shutil.copy(f"{bam}.bai", tmp_path / "s.bai"))  # the X.bai naming
    os.utime(index, (copy.stat().st_mtime - 60,) * 2)
    assert note in run(check_inputs, small_cohort, bams={"S": copy}).notes  # older than the BAM
    os.utime(index)
    assert note not in run(check_inputs, small_cohort, bams={"S": copy}).notes
    index.rename(tmp_path / "s.bam.csi")  # the pipeline does not use a .csi: it builds a .bai
    assert note in run(check_inputs, small_cohort, bams={"S": copy}).notes


def test_index_decisions(check_inputs, small_cohort, bam, tmp_path) -> None:
    """Made once, here, for the launcher and the workflow: which index is used, which built."""
    ref = Path(shutil.copy(small_cohort.ref, tmp_path / "ref.fa"))
    fai = Path(shutil.copy(f"{small_cohort.ref}.fai", f"{ref}.fai"))
    staged = tmp_path / "task"  # as Nextflow stages a BAM: a link without its index beside
    staged.mkdir()
    (staged / "S.bam").symlink_to(bam)
    script = [sys.executable, str(SCRIPT), "--ref", str(ref), "--bam", f"S={staged / 'S.bam'}",
              "--indexes", str(tmp_path / "indexes.json"), "--indexes-only"]
    subprocess.run(script, check=True, capture_output=True)
    assert json.loads((tmp_path / "indexes.json").read_text()) == {
        "fai": True, "bai": {"S": ".bam.bai"}}  # beside the file the link points to
    os.utime(fai, (ref.stat().st_mtime - 60,) * 2)  # older than the FASTA: stale
    subprocess.run(script, check=True, capture_output=True)
    assert json.loads((tmp_path / "indexes.json").read_text())["fai"] is False
    os.utime(fai)  # new again, but of another FASTA: does not describe this one
    ref.write_text(">chr1\nACGT\n")
    os.utime(fai)
    subprocess.run(script, check=True, capture_output=True)
    assert json.loads((tmp_path / "indexes.json").read_text())["fai"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("track name=x\n", "BED has no intervals"),
        ("1\t100\t200\n2\t100\t200\n", "no BED contig is in the reference"),
        ("chr1\t100\t200\nchr1\tabc\t300\n", "cannot be parsed: line 2: start and end are not"),
        ("chr1\t100\t200\nchr1 300 400\n", "cannot be parsed: line 2: not tab-separated"),
        ("chr1\t100\t200\nchr1\t500\t400\nchr1\t7\t7\n", "start is not before end: line 2: "),
        ("chr1\t-5\t200\n", "negative coordinates: line 1: -5 200"),
        ("".join(f"c{n}\t1\t2\n" for n in range(100_001)),
         "BED has more than 100000 contigs, more than this check reads"),
    ],
    ids=["empty", "no-common-contig", "not-integer", "spaces", "start>=end", "negative",
         "too-many-contigs"],
)
def test_bad_bed(check_inputs, small_cohort, tmp_path, text, expected) -> None:
    bed = write(tmp_path / "t.bed", text)
    assert expected in only_error(run(check_inputs, small_cohort, bed=bed))


def test_bed_contigs_partly_missing_is_a_warning(check_inputs, small_cohort, tmp_path) -> None:
    bed = write(tmp_path / "t.bed", "chr1\t100\t200\nchrUn_1\t5\t9\nchrUn_1\t20\t30\n")
    report = run(check_inputs, small_cohort, bed=bed)
    assert report.ok
    [warning] = report.problems
    assert warning.severity == "warning"
    assert warning.message.startswith("1 of 2 BED contigs are not in the reference")
    assert "chrUn_1" in warning.message and "2 intervals" in warning.message


def test_interval_list_accepted(check_inputs, small_cohort, tmp_path) -> None:
    header = "@HD\tVN:1.6\n@SQ\tSN:chr1\tLN:300000\n"
    ilist = write(
        tmp_path / "t.interval_list", header + "chr1\t101\t200\t+\tT1\nchr2\t1\t1\t+\tT2\n"
    )
    report = run(check_inputs, small_cohort, bed=ilist)
    assert report.ok and report.problems == []
    assert f"{ilist}: interval list with 2 intervals on 2 contigs" in report.notes
    bad = write(tmp_path / "bad.interval_list", header + "chr1\t0\t200\t+\tT1\n")
    assert "negative coordinates: line 3" in only_error(run(check_inputs, small_cohort, bed=bad))


def test_reference_without_fai(check_inputs, reference_fasta, small_cohort, tmp_path) -> None:
    ref = Path(shutil.copy(small_cohort.ref, tmp_path / "ref.fa"))
    report = run(check_inputs, small_cohort, ref=ref)
    assert report.ok and report.problems == []
    assert f"{ref}: no up-to-date .fai index: it will be built" in report.notes
    assert report.indexes["fai"] is False
    assert not Path(f"{ref}.fai").exists()
    indexed = reference_fasta.read_fai(Path(f"{small_cohort.ref}.fai"))
    assert reference_fasta.scan_fasta(ref) == ({row[0]: row[1] for row in indexed}, [])


def test_reference_not_fasta(check_inputs, small_cohort, tmp_path) -> None:
    ref = write(tmp_path / "ref.fa", "chr1\tACGT\n")
    msg = only_error(run(check_inputs, small_cohort, ref=ref))
    assert msg == "is not a FASTA file (its first line does not start with '>')"


def test_annotation_formats(check_inputs, small_cohort, tmp_path) -> None:
    gtf = tmp_path / "genes.gtf.gz"
    gtf.write_bytes(gzip.compress(b'chr1\tX\texon\t1\t9\t.\t+\t.\tgene_id "G1"; gene_name "A";\n'))
    report = run(check_inputs, small_cohort, annotation=gtf)
    assert f"{gtf}: annotation format GTF (gzip-compressed)" in report.notes
    junk = write(tmp_path / "genes.txt", "hello world\n")
    msg = only_error(run(check_inputs, small_cohort, annotation=junk))
    assert msg.startswith("is not a recognised annotation format (expected GFF3, GTF")


def test_all_problems_reported_at_once(check_inputs, small_cohort, bam, tmp_path) -> None:
    by_name = tmp_path / "byname.bam"
    pysam.sort("-n", "-o", str(by_name), str(bam))
    report = run(
        check_inputs,
        small_cohort,
        bams={"A": by_name, "B": tmp_path / "missing.bam", "C": write(tmp_path / "c.bam", "x")},
        bed=write(tmp_path / "empty.bed", ""),
        annotation=tmp_path / "missing.gff3",
    )
    assert errors(report) == [
        f"{by_name}: not coordinate-sorted (SO:queryname); sort it with `samtools sort`",
        f"{tmp_path / 'missing.bam'}: does not exist",
        f"{tmp_path / 'c.bam'}: is a text file, not a BAM file",
        f"{tmp_path / 'empty.bed'}: BED has no intervals",
        f"{tmp_path / 'missing.gff3'}: does not exist",
    ]


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_command_line(small_cohort, tmp_path) -> None:
    bams = [arg for name, path in small_cohort.bams.items() for arg in ("--bam", f"{name}={path}")]
    good = _cli("--ref", small_cohort.ref, "--bed", small_cohort.bed, *bams, "--json")
    assert good.returncode == 0
    assert json.loads(good.stdout) == {"problems": [], "notes": [
        f"{small_cohort.bed}: BED with {len(small_cohort.bed.read_text().splitlines())} "
        "intervals on 6 contigs",
    ], "indexes": {"fai": True, "bai": dict.fromkeys(small_cohort.bams, ".bam.bai")}}  # fmt: skip

    empty = write(tmp_path / "e.bed", "")
    args = ("--ref", small_cohort.ref, "--bed", empty, "--bam", tmp_path / "x.bam")
    bad = _cli(*args, "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {"problems": [
        {"file": str(tmp_path / "x.bam"), "message": "does not exist", "severity": "error"},
        {"file": str(empty), "message": "BED has no intervals", "severity": "error"},
    ], "notes": [], "indexes": {"fai": True, "bai": {"x.bam": None}}}  # fmt: skip
    text = _cli(*args)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        f"error: {tmp_path / 'x.bam'}: does not exist",
        f"error: {empty}: BED has no intervals",
    ]
    assert _cli("--ref", small_cohort.ref, "--frobnicate").returncode == 2  # usage error
    assert _cli("--ref", small_cohort.ref).returncode == 0  # only what is given is checked
    duplicate = _cli("--ref", small_cohort.ref, "--bed", small_cohort.bed, *bams[:2], *bams[:2])
    assert duplicate.returncode == 1 and "is given more than once" in duplicate.stdout


# --- what CNVkit itself cannot read ------------------------------------------------------------

TARGET_HEADS = {  # a BED's first lines, before the cohort's intervals
    "browser-and-track": ("browser position chr1\ntrack name=t\n", None),
    "track": ("track name=t\n", None),
    "comment": ("# made by hand\n", "comment lines ('#')"),
    "comment-after-track": ("track name=t\n#x\n", "comment lines ('#')"),
    "blank": ("\n", "blank lines"),
    "two-browsers": ("browser position chr1\nbrowser hide all\n", "'browser' line"),
    "track-then-browser": ("track name=t\nbrowser x\n", "'browser' line"),
}


def test_bed_lines_that_cnvkit_cannot_read_are_refused(check_inputs, small_cohort, tmp_path):
    """Each variant is refused exactly when CNVkit's own reader (`cnvkit.py target`) fails on it
    or would drop intervals; the refusal says what to do."""
    intervals = small_cohort.bed.read_text()
    first, rest = intervals.split("\n", 1)
    beds = {name: write(tmp_path / f"{name}.bed", head + intervals)
            for name, (head, _) in TARGET_HEADS.items()}
    beds["blank-at-end"] = write(tmp_path / "blank-at-end.bed", intervals + "\n")
    beds["second-track"] = write(tmp_path / "second-track.bed", f"{first}\ntrack x\n{rest}")
    expected = {name: why for name, (_, why) in TARGET_HEADS.items()}
    expected |= {"blank-at-end": "blank lines", "second-track": "'track' line after its top"}
    read = subprocess.run(  # CNVkit's reading, one interpreter for every file
        [sys.executable, "-c", "import sys\nfrom skgenome import tabio\nfor path in sys.argv[1:]:"
         "\n    try:\n        print(len(tabio.read_auto(path)))\n    except Exception:\n"
         "        print('error')", *map(str, beds.values())],
        capture_output=True, text=True, check=True).stdout.split()
    whole = intervals.count("\n")
    for (name, bed), cnvkit in zip(beds.items(), read, strict=True):
        report = run(check_inputs, small_cohort, bed=bed)
        if expected[name] is None:
            assert report.ok and cnvkit == str(whole), (name, report.problems, cnvkit)
        else:
            assert cnvkit != str(whole), (name, cnvkit)  # CNVkit fails, or drops intervals
            assert expected[name] in only_error(report), name


def test_targets_that_cnvkit_fails_on_are_refused(check_inputs, small_cohort, tmp_path) -> None:
    """A contig written with white space ('chr 1' names no FASTA's contig, whose name is the
    first word of its '>' line: a flat reference fails on it, coverage drops it) and a gzip file
    (CNVkit reads targets as plain text), as a BED or an interval list: each is refused, saying
    what to do. CNVkit's own failure on each comes first."""
    intervals = small_cohort.bed.read_text()
    spaced = write(tmp_path / "spaced.bed", intervals + "chr 1\t100\t200\n")
    header = "@HD\tVN:1.6\n@SQ\tSN:chr1\tLN:300000\n"
    spaced_list = write(tmp_path / "spaced.interval_list",
                        header + "chr1\t101\t200\t+\tT1\nchr 1\t101\t200\t+\tT2\n")
    packed = tmp_path / "targets.bed.gz"
    packed.write_bytes(gzip.compress(intervals.encode()))
    packed_list = tmp_path / "targets.interval_list"  # gzip-compressed, named as plain text
    packed_list.write_bytes(gzip.compress((header + "chr1\t101\t200\t+\tT1\n").encode()))
    script = """if True:  # a flat reference on the targets with white space, then reading the gzips
        import sys
        from cnvlib.reference import do_reference_flat
        from skgenome import tabio
        for path in sys.argv[3:]:
            try:
                tabio.read_auto(path)
            except UnicodeDecodeError:
                print("cannot decode")
        try:
            do_reference_flat(sys.argv[1], None, sys.argv[2])
        except KeyError as err:
            print(err)
    """
    cnvkit = subprocess.run([sys.executable, "-c", script, spaced, small_cohort.ref, packed,
                             packed_list], capture_output=True, text=True)
    assert cnvkit.stdout.splitlines() == ["cannot decode", "cannot decode",
                                          f"'chr 1 not in {small_cohort.ref}.'"], cnvkit.stderr
    fix = ("no reference names a contig so (a FASTA's contig is the first word of its '>' "
           "line), and CNVkit would drop these intervals or fail on them: write each contig as "
           "the reference names it")
    line = intervals.count("\n") + 1
    assert only_error(run(check_inputs, small_cohort, bed=spaced)) == (
        f"BED contig names must not contain white space: 'chr 1' (line {line}); {fix}")
    assert only_error(run(check_inputs, small_cohort, bed=spaced_list)) == (
        f"interval list contig names must not contain white space: 'chr 1' (line 4); {fix}")
    assert only_error(run(check_inputs, small_cohort, bed=packed)) == (
        "is gzip-compressed; CNVkit reads target files as plain text: decompress it (gunzip -c "
        "targets.bed.gz > targets.bed) and give that file")
    assert only_error(run(check_inputs, small_cohort, bed=packed_list)) == (
        "is gzip-compressed; CNVkit reads target files as plain text: decompress it (gunzip -c "
        "targets.interval_list > targets.plain.interval_list) and give that file")


@pytest.mark.parametrize("index", ["none", "samtools", "one-row-per-sequence"])
def test_fasta_names_must_be_unique(check_inputs, small_cohort, tmp_path, index) -> None:
    """'>chr 1' and '>chr 2' both name a contig 'chr', which CNVkit refuses with a traceback;
    the check says so, whatever .fai lies beside the FASTA."""
    ref = tmp_path / "ref.fa"
    text = small_cohort.ref.read_text()
    ref.write_text(text.replace(">chr1\n", ">chr 1\n").replace(">chr2\n", ">chr 2\n"))
    rows = [line.split("\t") for line in Path(f"{small_cohort.ref}.fai").read_text().split("\n")
            if line]
    shift = 2  # bytes added before every sequence after the first two headers
    table = []
    for number, (name, length, offset, bases, width) in enumerate(rows):
        offset = int(offset) + shift * min(number + 1, 2)
        table.append(["chr" if name in ("chr1", "chr2") else name, length, str(offset), bases,
                      width])
    if index == "samtools":  # samtools faidx skips a second sequence of the same name
        table = [row for number, row in enumerate(table) if number != 1]
    if index != "none":
        Path(f"{ref}.fai").write_text("".join("\t".join(row) + "\n" for row in table))
    report = run(check_inputs, small_cohort, ref=ref)
    assert any("more than one sequence is named chr: only the first word of a '>' line names "
               "a contig" in message for message in errors(report)), report.problems
    if index == "samtools":
        assert any("does not describe the FASTA" in p.message for p in report.problems)


def test_a_description_after_the_fasta_name_is_fine(check_inputs, small_cohort, tmp_path):
    ref = tmp_path / "ref.fa"
    ref.write_text(small_cohort.ref.read_text().replace(">chr1\n", ">chr1 assembled 2024\n"))
    report = run(check_inputs, small_cohort, ref=ref)
    assert report.ok and report.problems == []


# --- bounded reading ---------------------------------------------------------------------------

# Run a command and print its peak memory: started by this small process, the check's peak is
# its own (a child of the test process would start from the test process's peak, cnvlib and all).
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")


def _check_alone(args: list[str]) -> tuple[dict, int]:
    """check_inputs.py --json in a process of its own: its report and peak memory (bytes)."""
    done = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, str(SCRIPT), "--json",
                           *args], capture_output=True, text=True)
    return json.loads(done.stdout), int(done.stderr.split()[-1]) * 1024


def test_a_fasta_line_of_300_mb_is_read_in_bounded_memory(small_cohort, tmp_path) -> None:
    ref = tmp_path / "one-line.fa.gz"
    line = b"ACGT" * (1 << 18)  # 1 MiB
    with gzip.open(ref, "wb", compresslevel=1) as out:
        out.write(b">chr1\n")
        for _ in range(300):
            out.write(line)
        out.write(b"\n")
    assert ref.stat().st_size < 5 << 20
    report, peak = _check_alone(["--ref", str(ref), "--bed", str(small_cohort.bed),
                                 "--bam", f"S={small_cohort.bams['Sample_1']}"])
    assert peak < 150 << 20, f"{peak >> 20} MiB"
    assert any("contig lengths differ from the reference" in p["message"] and
               f"reference {300 << 20}" in p["message"] for p in report["problems"])


def test_a_bam_header_claiming_500_mb_is_refused_unread(small_cohort, tmp_path) -> None:
    bam = tmp_path / "huge-header.bam"
    with pysam.BGZFile(str(bam), "wb") as out:
        out.write(b"BAM\1" + (500_000_000).to_bytes(4, "little") + b"@HD\tVN:1.6\n")
        zeros = bytes(1 << 20)
        for _ in range(500):
            out.write(zeros)
    assert bam.stat().st_size < 1 << 20  # a small file ...
    report, peak = _check_alone(["--ref", str(small_cohort.ref), "--bed",
                                 str(small_cohort.bed), "--bam", f"S={bam}"])
    assert peak < 150 << 20, f"{peak >> 20} MiB"  # ... that never costs its claim
    assert report["problems"] == [{"file": str(bam), "severity": "error", "message":
                                   "its header claims 500000000 bytes of text; more than 64 "
                                   "MiB is not a header this check reads"}]


# Small files that claim or unfold into much: each one cost the check hundreds of MB before it
# streamed (only counts and the first few examples are kept) and bounded the contig names a file
# may bring (MAX_CONTIGS of them, MAX_NAMES bytes in all). Each is checked without the memory
# limit of the service (see test_the_memory_limit_becomes_a_problem), so it is the reading itself
# that stays within the ceiling.
CEILING = 200_000_000  # bytes: what one input check may cost (local_files.CheckLimits)
CRAM_EOF = load_script("alignment_header").CRAM_EOF
HD_PG = b"@HD\tVN:1.6\tSO:coordinate\n@PG\tID:samtools\tPN:samtools\tCL:samtools markdup a b\n"


def _bam_of_long_contig_names(ci: ModuleType, path: Path) -> Path:
    """A 1.3 MB BGZF BAM whose header lists 100,000 contigs named by 4,000 bytes each."""
    with pysam.BGZFile(str(path), "wb") as out:
        out.write(b"BAM\1" + struct.pack("<i", len(HD_PG)) + HD_PG + struct.pack("<i", 100_000))
        for start in range(0, 100_000, 1000):
            out.write(b"".join(struct.pack("<i", 4000) + b"A" * 3989 + b"%010d\0" % number
                               + struct.pack("<i", 1000) for number in range(start, start + 1000)))
    return path


def _itf8(value: int) -> bytes:
    """A CRAM ITF-8 integer (values below 2**28)."""
    for size, mark in ((1, 0), (2, 0x80), (3, 0xC0), (4, 0xE0)):
        if value < 1 << (8 * size - size):
            return (value | mark << (8 * size - 8)).to_bytes(size, "big")
    raise ValueError(value)


def _cram_of_long_contig_names(ci: ModuleType, path: Path) -> Path:
    """A CRAM 3.0 of 70 KB whose gzip-compressed header holds 15,000 @SQ lines naming contigs by
    4,000 bytes each (60 MB)."""
    text = HD_PG + b"".join(b"@SQ\tSN:%s%010d\tLN:1000\tM5:%s\n" % (b"A" * 3990, number,
                                                                   b"0" * 32)
                            for number in range(15_000))
    raw = struct.pack("<i", len(text)) + text
    data = gzip.compress(raw)
    block = bytes([1, 0]) + _itf8(0) + _itf8(len(data)) + _itf8(len(raw)) + data
    block += struct.pack("<I", zlib.crc32(block))
    header = struct.pack("<i", len(block)) + _itf8(0) * 4 + b"\0\0" + _itf8(1) + _itf8(0)
    header += struct.pack("<I", zlib.crc32(header))
    path.write_bytes(b"CRAM\3\0" + bytes(20) + header + block + CRAM_EOF[3])
    return path


def _fasta_of_names(path: Path, count: int) -> Path:
    """A gzip FASTA of `count` short sequences, each named by 83 bytes."""
    path.write_bytes(gzip.compress(b"".join(b">contig_%075d\nACGT\n" % n for n in range(count))))
    return path


def _fasta_of_many_contigs(ci: ModuleType, path: Path) -> Path:
    """A gzip FASTA of 2 MB holding 1,000,000 sequences."""
    return _fasta_of_names(path, 1_000_000)


def _fasta_of_long_names(ci: ModuleType, path: Path) -> Path:
    """A gzip FASTA of 0.4 MB holding 6,000 sequences named by 60,000 bytes each."""
    path.write_bytes(gzip.compress(b"".join(b">%s%09d\nACGT\n" % (b"A" * 59990, n)
                                            for n in range(6000)), 6))
    return path


def _bed_of_bad_lines(ci: ModuleType, path: Path) -> Path:
    """A plain BED of 6 MB: 3,000,000 lines CNVkit cannot read."""
    path.write_bytes(b"x\n" * 3_000_000)
    return path


def _gzip_bed_of_bad_lines(ci: ModuleType, path: Path) -> Path:
    """A gzip BED of 10 KB: 5,000,000 lines CNVkit cannot read."""
    path.write_bytes(gzip.compress(b"x\n" * 5_000_000, 9))
    return path


def _gzip_bed_of_many_contigs(ci: ModuleType, path: Path) -> Path:
    """A gzip BED of 1.6 MB: 300,000 intervals on as many contigs named by 1,000 bytes each."""
    path.write_bytes(gzip.compress(b"".join(b"%s%09d\t1\t2\n" % (b"A" * 991, n)
                                            for n in range(300_000)), 6))
    return path


HOSTILE = {  # name: (option, maker, what the check says of the file)
    "bam-contig-names": ("--bam", _bam_of_long_contig_names,
                         "has contig names of more than 8 MiB in all"),
    "cram-contig-names": ("--bam", _cram_of_long_contig_names,
                          "has contig names of more than 8 MiB in all"),
    "fasta-many-contigs": ("--ref", _fasta_of_many_contigs, "has more than 100000 contigs"),
    "fasta-long-names": ("--ref", _fasta_of_long_names,
                         "has contig names of more than 8 MiB in all"),
    "bed-bad-lines": ("--bed", _bed_of_bad_lines,
                      "BED cannot be parsed: line 1: fewer than 3 columns: 'x', line 2: fewer "
                      "than 3 columns: 'x', line 3: fewer than 3 columns: 'x', ... (3000000 in "
                      "all)"),
    "gzip-bed-bad-lines": ("--bed", _gzip_bed_of_bad_lines, "is gzip-compressed"),
    "gzip-bed-many-contigs": ("--bed", _gzip_bed_of_many_contigs, "is gzip-compressed"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_are_read_in_bounded_memory(check_inputs, small_cohort, tmp_path, name):
    option, make, expected = HOSTILE[name]
    suffix = {"--bam": ".cram" if "cram" in name else ".bam", "--ref": ".fa.gz",
              "--bed": ".bed"}[option]
    hostile = make(check_inputs, tmp_path / f"{name}{suffix}")
    assert hostile.stat().st_size < 11_000_000
    given = {"--ref": str(small_cohort.ref), "--bed": str(small_cohort.bed),
             "--bam": f"S={small_cohort.bams['Sample_1']}"}
    given[option] = f"S={hostile}" if option == "--bam" else str(hostile)
    report, peak = _check_alone([arg for pair in given.items() for arg in pair])
    assert peak <= CEILING, f"{peak / 1e6:.0f} MB"
    found = [p["message"] for p in report["problems"] if p["file"] == str(hostile)]
    assert any(expected in message for message in found), found


@pytest.fixture(scope="module")
def fasta_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzip FASTA of 2 MB whose one sequence unfolds into 2 GiB: some 10 s of CPU to read."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.fa.gz"
    member = gzip.compress(b"ACGT" * (25 << 20), 9)  # 100 MiB
    path.write_bytes(gzip.compress(b">chr1\n") + member * 20)
    return path


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_a_check_beyond_its_cpu_time_ends_with_a_problem(small_cohort, fasta_bomb) -> None:
    before = _child_cpu()
    done = _cli("--json", "--max-cpu-seconds=1", "--ref", fasta_bomb, "--bed", small_cohort.bed)
    assert _child_cpu() - before < 3  # stopped at its limit, not after the 10 s it would take
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["problems"] == [{
        "file": str(fasta_bomb), "severity": "error", "message":
        "the input check took more than 1 s of CPU reading its contigs (all of the FASTA, unless "
        "an up-to-date .fai lies beside it: `samtools faidx` makes one) and was stopped there; "
        "the inputs after it were not checked"}]


def test_the_memory_limit_becomes_a_problem(check_inputs, small_cohort, tmp_path) -> None:
    """A FASTA within the bounds (99,999 contigs of 83-byte names) in a check given 40 MB: the
    file that needs more is named, and the other inputs are still checked."""
    ref = _fasta_of_names(tmp_path / "many.fa.gz", 99_999)
    done = _cli("--json", "--max-memory=40000000", "--ref", ref, "--bed", small_cohort.bed)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == [{
        "file": str(ref), "severity": "error", "message":
        "needs more memory than the input check allows (40 MB): reading its contigs (all of the "
        "FASTA, unless an up-to-date .fai lies beside it: `samtools faidx` makes one)"}]
    assert f"{small_cohort.bed}: BED with 474 intervals on 6 contigs" in report["notes"]
    alone = _cli("--max-memory=40000000", "--ref", small_cohort.ref, "--bed", small_cohort.bed)
    assert alone.returncode == 0, alone.stdout  # what a real check needs fits


def test_content_problems_bounds_the_check(fasta_bomb, tmp_path, monkeypatch) -> None:
    """The caller's side: the check's CPU limit, the caller's wall-clock limit, a check killed
    from outside (as the kernel's OOM killer would): each one is a problem, never an exception."""
    assert local_files.CheckLimits().memory_bytes <= CEILING
    params = {"ref": str(fasta_bomb), "experimental_inputs": [], "control_inputs": []}
    [cpu] = local_files.content_problems(params, limits=local_files.CheckLimits(cpu_seconds=1))
    assert cpu.field == "ref"
    assert cpu.message.startswith(f"{fasta_bomb}: the input check took more than 1 s of CPU ")
    started = time.monotonic()
    [wall] = local_files.content_problems(params, limits=local_files.CheckLimits(wall_seconds=1))
    assert time.monotonic() - started < 5
    assert wall.field == "" and wall.message.startswith(
        "the input check took more than 1 s (wall clock) and was stopped")
    killed = tmp_path / "killed.py"
    killed.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    monkeypatch.setattr(local_files, "CHECK_INPUTS", killed)
    [kill] = local_files.content_problems(params)
    assert kill.message == ("the input check was killed (SIGKILL) before it finished; it may "
                            "have needed more than its 120 s of CPU or 200 MB of memory")


# --- option strings ----------------------------------------------------------------------------

def test_option_strings_are_checked_with_cnvkits_parsers(tmp_path) -> None:
    """`--check-options` (the pipeline's check in a direct or Tower run) applies the rules the
    launcher applies (bin/cnvkit_options.py): each string re-quoted with its -p apart, and
    CNVkit's own message for a bad one, every problem at once."""
    out = tmp_path / "options.json"
    command = [sys.executable, str(SCRIPT), "--check-options", str(out)]
    ok = subprocess.run([*command, "--option=coverage_conf=-p 4  -q 10",
                         "--option=segment_conf=-m cbs"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    checked = json.loads(out.read_text())
    assert set(checked) == set(SUBSTEP_OF_FIELD)
    assert checked["coverage_conf"] == {"args": "-q 10", "processes": 4}
    assert checked["segment_conf"] == {"args": "-m cbs", "processes": None}
    assert checked["call_conf"] == {"args": "", "processes": None}
    bad = subprocess.run([*command, "--option=fix_conf=--frob", "--option=call_conf=-o x.cns",
                          "--option=coverage_conf=-p 0"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[:3] == [
        "error: coverage_conf: -p/--processes must be a positive integer, got 0 (0 or a bare "
        "-p would mean all CPUs)",
        "error: fix_conf: cnvkit.py fix: unrecognized arguments: --frob",
        "error: call_conf: -o/--output is set by the pipeline, not by users"]


# --- CRAM --------------------------------------------------------------------------------------

@pytest.fixture
def cram(small_cohort: Cohort, tmp_path: Path) -> Path:
    """Sample_1's reads as CRAM 3.1 written against the cohort's FASTA (pysam's htslib)."""
    out = tmp_path / "Sample_1.sort.mkdup.cram"
    pysam.view("-C", "-T", str(small_cohort.ref), "-o", str(out),
               str(small_cohort.bams["Sample_1"]), catch_stdout=False)
    return out


def test_a_cram_is_read_like_a_bam(check_inputs, small_cohort, cram) -> None:
    report = run(check_inputs, small_cohort, bams={"Sample_1": cram})
    assert report.ok and errors(report) == [], report.problems
    assert report.indexes["bai"] == {"Sample_1": None}  # to be built (.crai)
    pysam.index(str(cram))
    assert run(check_inputs, small_cohort, bams={"Sample_1": cram}).indexes["bai"] == {
        "Sample_1": ".cram.crai"}


def test_a_cram_against_another_fasta_is_refused(check_inputs, small_cohort, cram,
                                                 tmp_path) -> None:
    """Same contig names and lengths, one base changed: the @SQ M5 tags tell."""
    text = small_cohort.ref.read_text()
    at = text.index("\n", text.index(">chr2")) + 500
    other = tmp_path / "other.fa"
    other.write_text(text[:at] + ("A" if text[at] != "A" else "C") + text[at + 1:])
    report = run(check_inputs, small_cohort, ref=other, bams={"Sample_1": cram})
    assert errors(report) == [f"{cram}: was written against another reference than {other}: "
                              "the sequence of chr2 differs (the MD5 of its @SQ M5 tag); give "
                              "the FASTA it was written with"]


def test_a_bam_named_cram_or_a_cut_cram_is_refused(check_inputs, small_cohort, cram,
                                                   tmp_path) -> None:
    named_cram = Path(shutil.copy(small_cohort.bams["Sample_1"], tmp_path / "B.cram"))
    cut = tmp_path / "C.cram"
    cut.write_bytes(cram.read_bytes()[:4000])
    report = run(check_inputs, small_cohort, bams={"B": named_cram, "C": cut})
    assert errors(report) == [f"{named_cram}: is a BAM file named .cram; name it .bam",
                              f"{cut}: is truncated (no CRAM end-of-file container)"]
