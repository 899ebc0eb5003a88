"""Tests of duplicate marking by assay (issue 25): bin/check_alignments.py's check_bam(file,
report, method) and bin/alignment_header.py's evidence, on real BAMs and CRAMs (simulated reads,
headers written with samtools reheader)."""

import os
import re
import shutil
import struct
import subprocess
import time
import tracemalloc
from pathlib import Path
from types import ModuleType

import pysam
import pytest

from scaffold.simulate import Cohort, SampleSpec, make_cohort
from tests.conftest import load_script
from tests.pipeline.test_check_inputs import reheader

CHROM = 100_000
HYBRID_AND_WGS = ["hybrid", "wgs"]


@pytest.fixture(scope="module")
def ca() -> ModuleType:
    """``bin/check_alignments.py`` as a module."""
    return load_script("check_alignments")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """One sample's BAM twice: duplicates marked (samtools markdup) and not marked at all."""
    root = tmp_path_factory.mktemp("dups")
    spec = [SampleSpec("S", "female")]
    unmarked = make_cohort(root / "plain", spec, reads_per_sample=20_000, chrom_length=CHROM,
                           mark_duplicates=False)  # fmt: skip
    marked = make_cohort(root / "marked", spec, reads_per_sample=20_000, chrom_length=CHROM)
    unmarked.bams["marked"] = marked.bams["S"]
    return unmarked


@pytest.fixture
def unmarked(cohort: Cohort) -> Path:
    return cohort.bams["S"]


def _check(ca: ModuleType, path: Path, method: str):
    report = ca.Report()
    header = ca.check_bam(path, report, method)
    return header, report


def _errors(report) -> list[str]:
    return [p.message for p in report.problems if p.severity == "error"]


def _with_lines(src: Path, dest: Path, lines: str) -> Path:
    """A copy of `src` whose header ends with `lines` (tab-separated SAM header lines)."""
    return reheader(src, dest, lambda header: header + lines)


def _cram(cohort: Cohort, bam: Path, dest: Path) -> Path:
    pysam.view("-C", "-T", str(cohort.ref), "-o", str(dest), str(bam), catch_stdout=False)
    return dest


# What each marker writes into the header (see bin/alignment_header.py's docstring): ID, PN, VN,
# CL as the tool sets them; paths and versions are examples.
MARKERS = {
    "Picard MarkDuplicates": "@PG\tID:MarkDuplicates\tVN:Version:3.1.1\tCL:MarkDuplicates "
    "--INPUT s.bam --OUTPUT md.bam --METRICS_FILE m.txt\tPN:MarkDuplicates",
    "Picard 2 MarkDuplicates": "@PG\tID:MarkDuplicates.1\tPN:MarkDuplicates\tVN:2.18.2\t"
    "CL:picard.sam.markduplicates.MarkDuplicates INPUT=[s.bam] OUTPUT=md.bam",
    "GATK MarkDuplicates": "@PG\tID:MarkDuplicates\tVN:Version:4.4.0.0\tCL:MarkDuplicates "
    "--INPUT s.bam --OUTPUT md.bam --METRICS_FILE m.txt\tPN:MarkDuplicates",
    "MarkDuplicatesWithMateCigar": "@PG\tID:MarkDuplicates\tVN:3.1.1\t"
    "CL:MarkDuplicatesWithMateCigar --INPUT s.bam\tPN:MarkDuplicatesWithMateCigar",
    "UmiAwareMarkDuplicatesWithMateCigar": "@PG\tID:MarkDuplicates\tVN:3.1.1\t"
    "CL:UmiAwareMarkDuplicatesWithMateCigar --INPUT s.bam\tPN:UmiAwareMarkDuplicatesWithMateCigar",
    "GATK MarkDuplicatesSpark": "@PG\tID:GATK MarkDuplicatesSpark\tVN:4.5.0.0\t"
    "CL:MarkDuplicatesSpark --output md.bam --input s.bam\tPN:GATK MarkDuplicatesSpark",
    "samtools markdup": "@PG\tID:samtools.1\tPN:samtools\tVN:1.19\t"
    "CL:samtools markdup -@ 4 s.bam md.bam",
    "samtools rmdup": "@PG\tID:samtools\tPN:samtools\tVN:1.9\tCL:samtools rmdup s.bam md.bam",
    "sambamba markdup": "@PG\tID:sambamba\tCL:markdup -t 8 s.bam md.bam\tVN:1.0",
    "SAMBLASTER": "@PG\tID:SAMBLASTER\tVN:0.1.26\tCL:samblaster -i stdin -o stdout",
    "biobambam bammarkduplicates2": "@PG\tID:bammarkduplicates2\tPN:bammarkduplicates2\t"
    "CL:/usr/bin/bammarkduplicates2 I=s.bam O=md.bam\tVN:2.0.87",
    "biobambam bamsormadup": "@PG\tID:bamsormadup\tPN:bamsormadup\t"
    "CL:/usr/bin/bamsormadup threads=4\tVN:2.0.87",
    "umi_tools dedup (a @PG added for it)": "@PG\tID:umi_tools\tPN:umi_tools\t"
    "CL:umi_tools dedup -I s.bam -S dd.bam",
    "fgbio consensus (@CO, after ZipperBams)": "@PG\tID:bwa\tPN:bwa\tVN:0.7.17\t"
    "CL:bwa mem -p -K 150000000 ref.fa -\n@CO\tRead group A contains consensus reads "
    "generated from 1 input read groups.",
    "fgbio CallMolecularConsensusReads": "@PG\tID:fgbio\tPN:fgbio\t"
    "CL:fgbio CallMolecularConsensusReads --input g.bam --output c.bam --min-reads 1",
    "fgbio CallDuplexConsensusReads": "@PG\tID:fgbio\tPN:fgbio\t"
    "CL:fgbio CallDuplexConsensusReads --input g.bam --output c.bam",
    "fgumi simplex": "@PG\tID:fgumi\tPN:fgumi\tVN:0.1.0\tCL:fgumi simplex --input g.bam "
    "--output c.bam",
    "Sentieon Dedup": "@PG\tID:sentieon\tPN:sentieon\tVN:202308.01\tCL:sentieon driver -t 16 "
    "-i sorted.bam --algo Dedup --score_info score.txt --metrics m.txt deduped.bam",
    "Parabricks fq2bam": "@PG\tID:pbrun fq2bam\tPN:pbrun fq2bam\tVN:4.7.1-1\tCL:pbrun fq2bam "
    "--ref ref.fa --in-fq a.fq.gz b.fq.gz --out-bam s.bam",
    "Parabricks markdup": "@PG\tID:pbrun markdup\tPN:pbrun markdup\tVN:4.7.1-1\t"
    "CL:pbrun markdup --in-bam s.bam --out-bam md.bam",
    "DRAGEN": "@PG\tID:DRAGEN SW build\tPN:DRAGEN\tVN:07.021.624\tCL:dragen -r /ref "
    "--enable-map-align true --enable-duplicate-marking true --output-directory .",
}
NOT_MARKERS = {
    "bwa mem": "@PG\tID:bwa\tPN:bwa\tVN:0.7.17\tCL:bwa mem ref.fa a.fq b.fq",
    "samtools sort": "@PG\tID:samtools\tPN:samtools\tVN:1.19\tCL:samtools sort -o s.markdup.bam",
    "Parabricks fq2bam --no-markdups": "@PG\tID:pbrun fq2bam\tPN:pbrun fq2bam\tVN:4.7.1-1\t"
    "CL:pbrun fq2bam --ref ref.fa --no-markdups --out-bam s.bam",
    "Sentieon LocusCollector": "@PG\tID:sentieon\tPN:sentieon\tCL:sentieon driver -i s.bam "
    "--algo LocusCollector --fun score_info score.txt",
    "DRAGEN without marking": "@PG\tID:DRAGEN SW build\tPN:DRAGEN\tCL:dragen -r /ref "
    "--enable-duplicate-marking false",
    "fgbio GroupReadsByUmi": "@PG\tID:fgbio\tPN:fgbio\tCL:fgbio GroupReadsByUmi -i a.bam",
    "another comment": "@CO\tRead group A holds reads of 2 lanes",
}


@pytest.mark.parametrize("tool", sorted(MARKERS))
def test_each_markers_header_is_recognised(ca, cohort, unmarked, tmp_path, tool) -> None:
    """The unmarked BAM with only the marker's header lines added passes, as BAM and CRAM."""
    bam = _with_lines(unmarked, tmp_path / "s.bam", MARKERS[tool] + "\n")
    cram = _cram(cohort, bam, tmp_path / "s.cram")
    for path in (bam, cram):
        header, report = _check(ca, path, "hybrid")
        assert header.deduplicated, path
        assert _errors(report) == [] and report.notes == []  # the header sufficed


@pytest.mark.parametrize("tool", sorted(NOT_MARKERS))
def test_lines_of_other_steps_are_not_taken_for_marking(ca, unmarked, tmp_path, tool) -> None:
    bam = _with_lines(unmarked, tmp_path / "s.bam", NOT_MARKERS[tool] + "\n")
    header, report = _check(ca, bam, "wgs")
    assert not header.deduplicated
    assert _errors(report)[0].startswith("duplicates are not marked or removed")


@pytest.mark.parametrize("method", HYBRID_AND_WGS)
def test_flags_without_a_header_line_pass(ca, cohort, tmp_path, method) -> None:
    """Marked by a tool whose @PG line was lost (Picard's PROGRAM_RECORD_ID=null, a reheader):
    the reads' duplicate flags say it."""
    bam = reheader(cohort.bams["marked"], tmp_path / "s.bam",
                   lambda h: "".join(ln for ln in h.splitlines(True) if "markdup" not in ln))
    for path in (bam, _cram(cohort, bam, tmp_path / "s.cram")):
        header, report = _check(ca, path, method)
        assert not header.deduplicated and _errors(report) == []
        assert re.search(r": duplicates marked \(record \d+ has the duplicate flag; no @PG",
                         report.notes[0])  # fmt: skip


@pytest.mark.parametrize("method", HYBRID_AND_WGS)
def test_unmarked_fails_with_a_hint_that_works(ca, cohort, unmarked, tmp_path, method) -> None:
    """The hint's samtools commands, run as written, give a BAM that passes."""
    _, report = _check(ca, unmarked, method)
    (message,) = _errors(report)
    assert message.startswith("duplicates are not marked or removed: no @PG header line of a "
                              "duplicate marker (samtools markdup")  # fmt: skip
    assert "and none of its 20000 records has the duplicate flag 0x400; mark them, e.g. `" \
        in message
    assert "Picard/GATK MarkDuplicates" in message
    command = re.search(r"`([^`]+)`", message).group(1)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["bash", "-c", command], cwd=work, check=True, capture_output=True)
    fixed = work / "out.bam"
    header, report = _check(ca, fixed, method)
    assert header.deduplicated and _errors(report) == []
    with pysam.AlignmentFile(str(fixed)) as bam:
        assert bam.check_index()
        assert any(read.is_duplicate for read in bam.fetch(until_eof=True))
    flags_only = reheader(fixed, tmp_path / "flags.bam",
                          lambda h: "".join(ln for ln in h.splitlines(True) if "@PG" not in ln))
    assert _errors(_check(ca, flags_only, method)[1]) == []


def test_amplicon_needs_no_marking(ca, cohort, unmarked, tmp_path) -> None:
    header, report = _check(ca, unmarked, "amplicon")
    assert report.problems == [] and not header.deduplicated
    assert report.notes == [f"{unmarked}: amplicon reads: no duplicate marking needed"]
    cram = _cram(cohort, unmarked, tmp_path / "s.cram")
    assert _check(ca, cram, "amplicon")[1].problems == []


def test_a_marked_amplicon_bam_is_a_warning(ca, cohort) -> None:
    """CNVkit counts no read flagged as a duplicate: marking an amplicon panel loses reads."""
    _, report = _check(ca, cohort.bams["marked"], "amplicon")
    assert [p.severity for p in report.problems] == ["warning"]
    assert "CNVkit counts no read flagged as a duplicate" in report.problems[0].message


def test_the_default_method_is_hybrid(ca, unmarked) -> None:
    report = ca.Report()
    ca.check_bam(unmarked, report)  # as check_inputs called it before assays
    assert _errors(report)[0].startswith("duplicates are not marked or removed")


def test_an_amplicon_cohort_passes_as_simulated(ca, tmp_path) -> None:
    panel = make_cohort(tmp_path, [SampleSpec("S", "male")], reads_per_sample=4_000,
                        chrom_length=CHROM, assay="amplicon")  # fmt: skip
    assert _check(ca, panel.bams["S"], "amplicon")[1].problems == []
    assert _errors(_check(ca, panel.bams["S"], "hybrid")[1])


# --- a CRAM's records: read through samtools, or not at all ---------------------------------------


def test_an_unmarked_cram(ca, cohort, unmarked, tmp_path) -> None:
    cram = _cram(cohort, unmarked, tmp_path / "s.cram")
    (message,) = _errors(_check(ca, cram, "wgs")[1])
    assert "none of its 20000 records has the duplicate flag 0x400" in message


def test_a_cram_without_samtools_on_path(ca, cohort, unmarked, tmp_path, monkeypatch) -> None:
    """Without samtools a CRAM's records are not read: only its header can say it."""
    cram = _cram(cohort, cohort.bams["marked"], tmp_path / "s.cram")
    flagged = reheader(cram, tmp_path / "f.cram",
                       lambda h: "".join(ln for ln in h.splitlines(True) if "markdup" not in ln))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    (message,) = _errors(_check(ca, flagged, "hybrid")[1])
    assert "and its records could not be read (samtools is not on PATH)" in message


def _fake_samtools(path: Path, script: str) -> str:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_a_samtools_that_hangs_or_babbles_is_bounded(ca, cohort, unmarked, tmp_path,
                                                     monkeypatch) -> None:  # fmt: skip
    flags = ca.duplicate_flags
    cram = _cram(cohort, unmarked, tmp_path / "s.cram")
    monkeypatch.setitem(flags.__globals__, "SCAN_SECONDS", 1.0)
    start = time.monotonic()
    silent = flags(cram, _fake_samtools(tmp_path / "hang", "exec sleep 60"))
    assert time.monotonic() - start < 10
    assert (silent.found, silent.records, silent.stopped, silent.whole) == \
        (False, 0, "1 s passed", False)
    babble = flags(cram, _fake_samtools(tmp_path / "babble", "exec yes 'not SAM'"))
    assert babble.stopped == "samtools wrote what is not a SAM record"
    endless = flags(cram, _fake_samtools(tmp_path / "endless", "exec yes 'r\t0\tchr1\t1'"))
    assert (endless.found, endless.records) == (False, flags.__globals__["SCAN_RECORDS"])
    failing = flags(cram, _fake_samtools(tmp_path / "fail", "exit 3"))
    assert failing.stopped == "samtools could not read it (exit status 3)"


# --- hostile BAMs: what is read stays bounded -----------------------------------------------------


def test_records_beyond_the_bound_are_not_read(ca, tmp_path) -> None:
    """A long unmarked BAM: SCAN_RECORDS records are read, in bounded memory and time."""
    big = make_cohort(tmp_path, [SampleSpec("S", "female")], reads_per_sample=260_000,
                      chrom_length=CHROM, mark_duplicates=False).bams["S"]  # fmt: skip
    tracemalloc.start()
    start = time.monotonic()
    try:
        flags = ca.duplicate_flags(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = ca.duplicate_flags.__globals__["SCAN_RECORDS"]
    assert (flags.found, flags.records, flags.stopped, flags.whole) == (False, limit, "", False)
    assert time.monotonic() - start < 10 and peak < 16 << 20, peak
    (message,) = _errors(_check(ca, big, "hybrid")[1])
    assert f"none of its first {limit} records has the duplicate flag" in message


def test_the_byte_bound_reads_the_first_records(ca, unmarked, monkeypatch) -> None:
    assert ca.duplicate_flags(unmarked).whole
    monkeypatch.setitem(ca.duplicate_flags.__globals__, "SCAN_BYTES", 100_000)
    flags = ca.duplicate_flags(unmarked)
    assert not flags.whole and not flags.stopped and 100 < flags.records < 20_000
    (message,) = _errors(_check(ca, unmarked, "wgs")[1])
    assert f"none of its first {flags.records} records has the duplicate flag 0x400;" in message


def test_a_truncated_bam_stops_where_it_ends(ca, unmarked, tmp_path) -> None:
    cut = tmp_path / "cut.bam"
    cut.write_bytes(unmarked.read_bytes()[: unmarked.stat().st_size // 2])
    flags = ca.duplicate_flags(cut)
    assert not flags.found and 0 < flags.records < 20_000
    assert flags.stopped.startswith("it is truncated or corrupt")


def _bam_of(path: Path, records: bytes, header: bytes = b"@HD\tVN:1.6\tSO:coordinate\n") -> Path:
    data = b"BAM\1" + struct.pack("<i", len(header)) + header + struct.pack("<i", 1)
    data += struct.pack("<i", 5) + b"chr1\0" + struct.pack("<i", 1000) + records
    with pysam.BGZFile(str(path), "wb") as out:
        out.write(data)
    return path


def test_a_record_claiming_gigabytes_is_corrupt(ca, tmp_path) -> None:
    huge = _bam_of(tmp_path / "huge.bam", struct.pack("<i", (1 << 31) - 1) + bytes(100))
    assert ca.duplicate_flags(huge).stopped == "record 1 is corrupt"
    (message,) = _errors(_check(ca, huge, "wgs")[1])
    assert "none of its first 0 records has the duplicate flag 0x400 (read no further: " \
        "record 1 is corrupt)" in message


def test_empty_blocks_after_the_header_are_bounded(ca, tmp_path) -> None:
    """60 MB of empty BGZF blocks where records should be: at most SCAN_COMPRESSED is read."""
    bam = _bam_of(tmp_path / "empty.bam", b"")
    eof = bam.read_bytes()[-28:]
    with open(bam, "r+b") as out:
        out.seek(-28, os.SEEK_END)
        out.write(eof * 2_200_000)
    start = time.monotonic()
    flags = ca.duplicate_flags(bam)
    assert (flags.found, flags.records, flags.stopped) == (False, 0, "")
    assert time.monotonic() - start < 15


def test_a_fifo_is_not_waited_on(ca, tmp_path) -> None:
    fifo = tmp_path / "S.bam"
    os.mkfifo(fifo)
    assert ca.duplicate_flags(fifo).stopped == "it is not a regular file"


def test_samtools_is_there(ca) -> None:
    """The CRAM tests above read records through the samtools this machine has."""
    assert shutil.which("samtools")


def test_a_cram_through_a_descriptor_link(ca, cohort, tmp_path) -> None:
    """As the launcher hands the check /proc/self/fd/N: samtools reads the descriptor the check
    opened (its own /proc/self would be another process's), and a FIFO is not waited on."""
    bam = reheader(cohort.bams["marked"], tmp_path / "s.bam",
                   lambda h: "".join(ln for ln in h.splitlines(True) if "markdup" not in ln))
    cram = _cram(cohort, bam, tmp_path / "s.cram")
    fd = os.open(cram, os.O_RDONLY)
    try:
        link = tmp_path / "view" / "S.cram"
        link.parent.mkdir()
        link.symlink_to(f"/proc/self/fd/{fd}")
        flags = ca.duplicate_flags(link)
        assert flags.found and flags.stopped == ""
    finally:
        os.close(fd)
    fifo = tmp_path / "F.cram"
    os.mkfifo(fifo)
    assert ca.duplicate_flags(fifo).stopped == "it is not a regular file"
