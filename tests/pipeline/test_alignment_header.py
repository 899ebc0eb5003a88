"""Tests of bin/alignment_header.py: what the input check reads of a BAM's or CRAM's header, in
bounded memory, through the one descriptor it opens."""

import bz2
import gzip
import lzma
import os
import shutil
import signal
import struct
import tracemalloc
import zlib
from pathlib import Path
from types import ModuleType

import pysam
import pytest

from scaffold.simulate import Cohort
from tests.pipeline.test_check_inputs import HD_PG, _itf8, reheader

SQ = b"@SQ\tSN:chr1\tLN:1000\tM5:0123456789abcdef0123456789ABCDEF\n@SQ\tSN:chr2\tLN:500\n"


@pytest.fixture
def bam(small_cohort: Cohort) -> Path:
    return small_cohort.bams["Sample_1"]


def _bam(path: Path, text: bytes, contigs: list[tuple[bytes, int]], size: int | None = None,
         magic: bytes = b"BAM\1") -> Path:
    """A BGZF BAM header (no reads): `text` claiming `size` bytes, then the binary contigs."""
    data = magic + struct.pack("<i", len(text) if size is None else size) + text
    data += struct.pack("<i", len(contigs)) + b"".join(
        struct.pack("<i", len(name) + 1) + name + b"\0" + struct.pack("<i", length)
        for name, length in contigs)
    with pysam.BGZFile(str(path), "wb") as out:
        out.write(data)
    return path


PACK = {0: bytes, 1: gzip.compress, 2: bz2.compress, 3: lzma.compress}


def _cram(ah: ModuleType, path: Path, text: bytes, method: int = 1, major: int = 3,
          size: int | None = None) -> Path:
    """A CRAM (3.0 or 2.1) of one container, its header block holding `text` packed by
    `method` (raw, gzip, bzip2, lzma) and claiming `size` bytes, then the end-of-file container."""
    raw = struct.pack("<i", len(text)) + text
    data = PACK[method](raw)
    block = bytes([method, 0]) + _itf8(0) + _itf8(len(data) if size is None else size)
    block += _itf8(len(raw)) + data
    block += struct.pack("<I", zlib.crc32(block)) if major == 3 else b""
    header = struct.pack("<i", len(block)) + _itf8(0) * 4 + b"\0\0" + _itf8(1) + _itf8(0)
    header += struct.pack("<I", zlib.crc32(header)) if major == 3 else b""
    path.write_bytes(b"CRAM" + bytes([major, 0 if major == 3 else 1]) + bytes(20) + header
                     + block + ah.CRAM_EOF.get(major, b""))
    return path


def test_a_bam_header(alignment_header, bam) -> None:
    header = alignment_header.read_header(bam)
    assert header.sort_order == "coordinate" and header.deduplicated
    with pysam.AlignmentFile(str(bam)) as known:
        assert header.contigs == dict(zip(known.references, known.lengths, strict=True))
    assert header.md5s == {}  # a BAM's contigs come from its binary list


@pytest.mark.parametrize("version", ["2.1", "3.0", "3.1"])
def test_a_cram_header_written_by_htslib(alignment_header, small_cohort, bam, tmp_path,
                                         version) -> None:
    cram = tmp_path / "S.cram"
    pysam.view("-C", "-T", str(small_cohort.ref), "--output-fmt-option", f"version={version}",
               "-o", str(cram), str(bam), catch_stdout=False)
    header = alignment_header.read_header(cram)
    assert header.sort_order == "coordinate" and header.deduplicated
    assert header.contigs == alignment_header.read_header(bam).contigs
    with pysam.AlignmentFile(str(cram), reference_filename=str(small_cohort.ref)) as known:
        assert header.md5s == {sq["SN"]: sq["M5"] for sq in known.header.to_dict()["SQ"]}


@pytest.mark.parametrize("method", sorted(PACK), ids=["raw", "gzip", "bzip2", "lzma"])
@pytest.mark.parametrize("major", [2, 3])
def test_every_cram_header_block_is_read(alignment_header, tmp_path, method, major) -> None:
    text = HD_PG + SQ + b"\0" * 100  # padded with NULs, as htslib leaves room to grow
    header = alignment_header.read_header(_cram(alignment_header, tmp_path / "h.cram", text,
                                                method, major))
    assert (header.sort_order, header.deduplicated) == ("coordinate", True)
    assert header.contigs == {"chr1": 1000, "chr2": 500}
    assert header.md5s == {"chr1": "0123456789abcdef0123456789abcdef"}  # lower case


@pytest.mark.parametrize(("claim", "expected"), [
    (64 << 20 | 1, "its header claims 67108865 bytes of text; more than 64 MiB"),
    ((1 << 31) - 1, "its header claims 2147483647 bytes of text"),
    (-(1 << 31), "its header claims -2147483648 bytes of text"),  # l_text 2**31, as int32
])
def test_a_bam_header_claiming_too_much_is_refused_unread(alignment_header, tmp_path, claim,
                                                          expected) -> None:
    big = _bam(tmp_path / "big.bam", HD_PG, [(b"chr1", 1000)], size=claim)
    with pytest.raises(ValueError, match=expected):
        alignment_header.read_header(big)


def test_too_many_or_too_long_bam_contigs_are_refused(alignment_header, tmp_path) -> None:
    many = _bam(tmp_path / "many.bam", HD_PG, [(b"chr1", 1000)])
    data = gzip.decompress(many.read_bytes())
    count = data.index(b"chr1") - 8
    with pysam.BGZFile(str(many), "wb") as out:
        out.write(data[:count] + struct.pack("<i", 100_001) + data[count + 4:])
    with pytest.raises(ValueError, match="its header claims 100001 contigs; more than 100000"):
        alignment_header.read_header(many)
    long = _bam(tmp_path / "long.bam", HD_PG, [(b"c" * 5000, 1000)])
    with pytest.raises(ValueError, match="truncated or corrupt.*implausible length 5001"):
        alignment_header.read_header(long)


def test_a_cram_header_claiming_too_much_is_refused_unread(alignment_header, tmp_path) -> None:
    big = _cram(alignment_header, tmp_path / "big.cram", HD_PG, size=(64 << 20) + 1)
    with pytest.raises(ValueError, match="its header claims more than 64 MiB"):
        alignment_header.read_header(big)


def test_a_cram_header_shorter_than_it_claims(alignment_header, tmp_path) -> None:
    cram = _cram(alignment_header, tmp_path / "short.cram", HD_PG + SQ, method=0)
    data = cram.read_bytes()
    at = data.index(HD_PG) - 4  # the text's own length, beyond the block's
    cram.write_bytes(data[:at] + struct.pack("<i", 1000) + data[at + 4:])
    with pytest.raises(ValueError, match="its header is shorter than it claims"):
        alignment_header.read_header(cram)


@pytest.mark.parametrize(("name", "make", "expected"), [
    ("x.bam", lambda p: _bam(p, HD_PG, [], magic=b"BAM\2"), r"not BAM \(no 'BAM\\1' magic\)"),
    ("x.bam", lambda p: p.write_bytes(b"\x1f\x8b\x08\0" + bytes(100)), "gzip-compressed but "
     "not BGZF"),
    ("x.bam", lambda p: p.write_bytes(b"\x00\x01" * 100), "is not a BAM file"),
    ("x.bam", lambda p: p.write_text("@HD\tVN:1.6\n"), "is a SAM text file, not BAM"),
    ("x.bam", lambda p: p.write_bytes(b""), "is empty, not a BAM file"),
    ("x.cram", lambda p: p.write_bytes(b""), "is empty, not a CRAM file"),
    ("x.cram", lambda p: p.write_bytes(b"CRAM\4\0" + bytes(100)), "is CRAM version 4"),
    ("x.cram", lambda p: p.write_bytes(b"CRAM\3\0" + bytes(10)), "truncated or corrupt"),
])
def test_what_is_not_a_header_this_check_reads(alignment_header, tmp_path, name, make,
                                               expected) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError, match=expected):
        alignment_header.read_header(path)


def test_a_cut_file_is_truncated(alignment_header, small_cohort, bam, tmp_path) -> None:
    cut = tmp_path / "cut.bam"
    cut.write_bytes(bam.read_bytes()[:-100])  # its header whole, its end-of-file marker not
    with pytest.raises(ValueError, match=r"is truncated \(no BGZF end-of-file marker\)"):
        alignment_header.read_header(cut)
    cram = _cram(alignment_header, tmp_path / "cut.cram", HD_PG + SQ)
    cram.write_bytes(cram.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"is truncated \(no CRAM end-of-file container\)"):
        alignment_header.read_header(cram)


def test_a_fifo_is_refused_without_waiting(alignment_header, tmp_path) -> None:
    fifo = tmp_path / "S.bam"
    os.mkfifo(fifo)
    signal.alarm(10)  # a reader that waited for a writer would be stopped here
    try:
        with pytest.raises(ValueError, match="is not a regular file"):
            alignment_header.read_header(fifo)
    finally:
        signal.alarm(0)


def test_the_file_is_read_through_the_descriptor_given(alignment_header, bam, tmp_path) -> None:
    """As the launcher hands the check a link to /proc/self/fd/N: what is read is the file
    opened, whatever its path became since."""
    moved = Path(shutil.copy(bam, tmp_path / "S.bam"))
    fd = os.open(moved, os.O_RDONLY)
    try:
        link = tmp_path / "view" / "S.bam"
        link.parent.mkdir()
        link.symlink_to(f"/proc/self/fd/{fd}")
        moved.unlink()
        moved.write_text("@HD\tVN:1.6\n")  # another file at the path the descriptor came from
        assert alignment_header.read_header(link).contigs == \
            alignment_header.read_header(bam).contigs
    finally:
        os.close(fd)


def test_a_long_header_is_read_in_bounded_memory(alignment_header, tmp_path) -> None:
    """A CRAM whose lzma header unfolds into 60 MB of @CO lines: the reader holds chunks."""
    comments = b"".join(b"@CO\t%s\n" % (b"x" * 1000) for _ in range(60_000))
    cram = _cram(alignment_header, tmp_path / "long.cram", HD_PG + comments + SQ, method=3)
    assert cram.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        header = alignment_header.read_header(cram)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.contigs == {"chr1": 1000, "chr2": 500}
    assert peak < 24 << 20, f"{peak >> 20} MiB"  # a few chunks (CHUNK), never the 60 MB


def test_a_long_bam_header_is_streamed(alignment_header, small_cohort, bam, tmp_path) -> None:
    """A header with 60 MB of @CO lines is still read, keeping only what the check needs."""
    comments = "".join(f"@CO\t{'x' * 1000}\n" for _ in range(60_000))
    big = reheader(bam, tmp_path / "big.bam", lambda header: header + comments)
    header = alignment_header.read_header(big)
    assert header.sort_order == "coordinate" and header.deduplicated
    assert header.contigs == alignment_header.read_header(bam).contigs


@pytest.mark.parametrize(
    ("pg", "accepted"),
    [
        ({"ID": "samtools.2", "PN": "samtools", "CL": "samtools markdup -@4 in.bam out.bam"}, True),
        ({"ID": "samtools", "CL": "/opt/bin/samtools rmdup in.bam out.bam"}, True),
        ({"ID": "MarkDuplicates", "PN": "MarkDuplicates", "CL": "MarkDuplicates INPUT=a"}, True),
        ({"ID": "MarkDuplicates.1", "CL": "picard.sam.markduplicates.MarkDuplicates I=a"}, True),
        ({"ID": "GATK MarkDuplicatesSpark", "CL": "MarkDuplicatesSpark --input a"}, True),
        ({"ID": "MarkDuplicatesWithMateCigar", "PN": "MarkDuplicatesWithMateCigar"}, True),
        ({"ID": "sambamba", "CL": "markdup -t 4 in.bam out.bam", "PN": "sambamba"}, True),
        (
            {"ID": "bammarkduplicates2", "PN": "bammarkduplicates2", "CL": "bammarkduplicates2"},
            True,
        ),
        ({"ID": "bamsormadup", "PN": "bamsormadup", "CL": "/usr/bin/bamsormadup"}, True),
        ({"ID": "SAMBLASTER", "VN": "0.1.26", "CL": "samblaster -i stdin -o stdout"}, True),
        ({"ID": "DRAGEN SW build", "PN": "DRAGEN",
          "CL": "dragen -r /ref --enable-duplicate-marking true --output-directory ."}, True),
        ({"ID": "DRAGEN", "CL": "dragen -r /ref --enable-duplicate-marking=TRUE"}, True),
        ({"ID": "DRAGEN SW build", "PN": "DRAGEN",
          "CL": "dragen -r /ref --enable-duplicate-marking false"}, False),
        ({"ID": "DRAGEN", "PN": "DRAGEN", "CL": "dragen -r /ref --enable-map-align true"}, False),
        ({"ID": "bwa", "PN": "bwa", "CL": "bwa mem ref.fa s.markdup.fq"}, False),
        ({"ID": "samtools", "PN": "samtools", "CL": "samtools sort -o s.markdup.bam"}, False),
        ({"ID": "MarkDuplicates", "PN": "UmiAwareMarkDuplicatesWithMateCigar"}, True),
        ({"ID": "bamstreamingmarkduplicates", "CL": "bamstreamingmarkduplicates I=a"}, True),
        ({"ID": "umi_tools", "CL": "umi_tools dedup -I in.bam -S out.bam"}, True),
        ({"ID": "umi_tools", "CL": "umi_tools group -I in.bam --output-bam"}, False),
        ({"ID": "fgbio", "CL": "fgbio CallMolecularConsensusReads -i g.bam -o c.bam"}, True),
        ({"ID": "1", "PN": "CallDuplexConsensusReads", "CL": "CallDuplexConsensusReads"}, True),
        ({"ID": "fgbio", "CL": "fgbio GroupReadsByUmi -i in.bam -o g.bam"}, False),
        ({"ID": "fgumi", "PN": "fgumi", "CL": "fgumi simplex --input g.bam"}, True),
        ({"ID": "fgumi.1", "PN": "fgumi", "CL": "/opt/fgumi duplex --input g.bam"}, True),
        ({"ID": "fgumi", "PN": "fgumi", "CL": "fgumi group --input in.bam"}, False),
        ({"ID": "sentieon", "CL": "sentieon driver -t 8 -i s.bam --algo Dedup --rmdup o.bam"},
         True),
        ({"ID": "sentieon", "CL": "sentieon driver -i s.bam --algo LocusCollector --fun "
          "score_info score.txt"}, False),
        ({"ID": "pbrun fq2bam", "PN": "pbrun fq2bam", "CL": "pbrun fq2bam --ref r.fa"}, True),
        ({"ID": "pbrun markdup", "CL": "pbrun markdup --in-bam a.bam --out-bam b.bam"}, True),
        ({"ID": "pbrun fq2bam", "CL": "pbrun fq2bam --ref r.fa --no-markdups"}, False),
        ({"ID": "pbrun giraffe", "CL": "pbrun giraffe --in-fq a.fq b.fq"}, False),
    ],
)
def test_dedup_programs(alignment_header, pg, accepted) -> None:
    assert alignment_header.is_dedup_program(pg) is accepted
