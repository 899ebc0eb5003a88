"""What the input checks use of a BAM's or CRAM's header (sort order, duplicate marking, contigs
and their MD5s), read in bounded memory through one descriptor of the file it is given; and,
when the header says nothing of duplicates, whether the first reads carry the duplicate flag.

The SAM header text is streamed a chunk at a time, keeping only the lines asked for; a header
may claim at most MAX_HEADER_TEXT bytes of text, and its contigs are bounded as every file's
are (`input_bounds`). pysam is not used: htslib reads a header whole, whatever size it claims
(a BAM of 0.8 MB claiming 500 MB of zeros costs it 1.4 GB), and waits on a FIFO.
Standard library only (the pipeline runs the checks inside CNVkit containers).

Duplicate marking shows in the header as the @PG line each marker writes (what each writes was
looked up in its source or documentation):
- Picard MarkDuplicates (and MarkDuplicatesWithMateCigar, UmiAwareMarkDuplicatesWithMateCigar)
  and GATK4's copy of it: ID and PN the tool's name (ID made unique with ".1", ".2"), CL starting
  with it; GATK's MarkDuplicatesSpark: ID and PN "GATK MarkDuplicatesSpark".
- samtools markdup/rmdup: ID samtools[.N], PN samtools, CL "samtools markdup ...".
- sambamba markdup: ID sambamba, CL "markdup ..." (versions before 0.7 wrote no @PG).
- SAMBLASTER: ID SAMBLASTER, CL "samblaster ..."; biobambam: ID/PN bammarkduplicates[2],
  bamsormadup, bamstreamingmarkduplicates; BamUtil "bam dedup"; umi_tools dedup writes no @PG
  (its output keeps its input's header), so only a @PG added for it (CL "umi_tools dedup ...")
  is seen.
- fgbio's consensus callers (CallMolecularConsensusReads, CallDuplexConsensusReads,
  CallCodecConsensusReads) write no @PG but a @CO line "Read group X contains consensus reads
  generated from N input read groups." (kept by ZipperBams after re-alignment); fgumi writes
  that @CO too and a @PG ID fgumi, CL "fgumi simplex|duplex|codec|dedup ...".
- Sentieon: `sentieon driver ... --algo Dedup` in CL (LocusCollector alone only scores).
- Parabricks: ID/PN "pbrun fq2bam" (or markdup, fq2bam_meth and the germline/somatic pipelines
  that run it) marks duplicates unless CL has --no-markdups.
- DRAGEN: one program; its CL says --enable-duplicate-marking true.
Without such a line, `duplicate_flags` reads a bounded sample of records: a BAM's itself, a
CRAM's through `samtools view` when samtools is on PATH (CRAM records need a CRAM decoder).
"""

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from input_bounds import CHUNK, MAX_CONTIGS, MAX_LINE, MAX_NAMES, Contigs

MAX_HEADER_TEXT = 64 << 20  # a BAM's or CRAM's SAM header text
MAX_NAME = 4096  # a BAM contig name
BGZF_MAGIC = b"\x1f\x8b\x08\x04"
# The end-of-file container of CRAM 3.x, and of CRAM 2.1 (without CRC32s).
CRAM_EOF = {3: bytes.fromhex("0f000000ffffffff0fe0454f46000000000100"
                             "05bdd94f0001000606010001000100ee63014b"),
            2: bytes.fromhex("0b000000ffffffffffe0454f4600000000010000010006060100010001"
                             "00")}
# htslib writes 2.1's (reference id -1 as ITF-8 ff ff ff ff 0f, where the specification has ff
# in the last byte): both are read as the end.
_CRAM_EOF_HTSLIB = {2: CRAM_EOF[2][:8] + b"\x0f" + CRAM_EOF[2][9:]}
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Program names (from @PG ID, PN or the first two words of CL) of duplicate markers/removers
# and of consensus callers (a consensus read stands for its duplicates).
DEDUP_PROGRAM = re.compile(
    r"markdup|rmdup|dedup|(umiaware|simple)?markduplicates(withmatecigar|spark)?"
    r"|bammarkduplicates\d*|bamsormadup|bamstreamingmarkduplicates|samblaster"
    r"|call(molecular|duplex|codec)consensusreads",
    re.IGNORECASE,
)
# Programs whose subcommand (the word after the program's) says it: {program: {subcommands}}.
DEDUP_SUBCOMMANDS = {
    "fgumi": {"simplex", "duplex", "codec", "dedup"},
    "pbrun": {"fq2bam", "fq2bam_meth", "markdup", "germline", "deepvariant_germline", "somatic"},
}
PBRUN_NO_MARKDUPS = re.compile(r"--no-markdups\b")
# Sentieon's driver runs algorithms; Dedup marks (or with --rmdup removes) duplicates.
SENTIEON_DEDUP = re.compile(r"--algo[\s=]+Dedup\b", re.IGNORECASE)
# DRAGEN marks duplicates inside its one program; only its command line says so.
DRAGEN = re.compile(r"dragen", re.IGNORECASE)
DRAGEN_DEDUP = re.compile(r"--enable-duplicate-marking(?:=|\s+)true\b", re.IGNORECASE)
# fgbio's (and fgumi's) consensus callers leave this @CO line, and no @PG.
CONSENSUS_COMMENT = re.compile(
    r"Read group \S+ contains consensus reads generated from \d+ input read groups")
DEDUP_TOOLS = (
    "samtools markdup/rmdup, Picard or GATK MarkDuplicates (incl. MarkDuplicatesWithMateCigar, "
    "UmiAwareMarkDuplicatesWithMateCigar, MarkDuplicatesSpark), sambamba markdup, SAMBLASTER, "
    "biobambam bammarkduplicates/bamsormadup, BamUtil dedup, fgbio or fgumi consensus reads, "
    "Sentieon Dedup, Parabricks fq2bam/markdup, DRAGEN with --enable-duplicate-marking true; "
    "umi_tools dedup records no @PG line of its own"
)
# What `duplicate_flags` reads at most, after the header.
SCAN_RECORDS = 200_000
SCAN_BYTES = 64 << 20  # of records, uncompressed
SCAN_COMPRESSED = 16 << 20  # of BGZF blocks
SCAN_SECONDS = 20.0
MAX_RECORD = 1 << 20  # one BAM record; a longer one is taken for corruption
DUPLICATE = 0x400


def _take(stream: IO[bytes], size: int) -> bytes:
    """Exactly ``size`` bytes; EOFError if the stream ends first or the size is implausible."""
    if not 0 <= size <= MAX_NAME:
        raise EOFError(f"implausible length {size}")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("unexpected end of data")
    return data


def _int32(stream: IO[bytes]) -> int:
    return struct.unpack("<i", _take(stream, 4))[0]


def _sam_lines(stream: IO[bytes], size: int, kinds: tuple[bytes, ...]) -> Iterator[str]:
    """The lines of a ``size``-byte SAM header text that start with one of ``kinds``, read
    a chunk at a time (the rest is skipped, never held)."""
    partial = b""
    while size > 0:
        chunk = stream.read(min(size, CHUNK))
        if not chunk:
            raise EOFError("unexpected end of data")
        size -= len(chunk)
        lines = chunk.split(b"\n")
        lines[0] = (partial + lines[0])[:MAX_LINE]  # a longer line keeps its start only
        partial = lines.pop()
        for line in lines:
            if line.startswith(kinds):
                yield line.decode("utf-8", "replace")
    if partial.rstrip(b"\0").startswith(kinds):
        yield partial.rstrip(b"\0").decode("utf-8", "replace")


@dataclass
class Header:
    """What the checks use of a BAM's or CRAM's header, taken from it a line at a time."""

    sort_order: str | None = None  # SO of the first @HD line
    deduplicated: bool = False  # a @PG line of a duplicate marker (or a consensus @CO line)
    contigs: Contigs = field(default_factory=Contigs)  # {name: length}
    md5s: dict[str, str] = field(default_factory=dict)  # {name: M5 of its @SQ line} (CRAM)
    seen_hd: bool = False

    def take(self, line: str) -> None:
        """Take an @HD, @PG, @SQ or @CO line."""
        if line.startswith("@CO\t"):
            self.deduplicated = self.deduplicated or bool(CONSENSUS_COMMENT.match(line[4:]))
            return
        kind, *fields = line.split("\t")
        tags = dict(f.split(":", 1) for f in fields if ":" in f)
        if kind == "@HD" and not self.seen_hd:
            self.seen_hd, self.sort_order = True, tags.get("SO")
        elif kind == "@PG":
            self.deduplicated = self.deduplicated or is_dedup_program(tags)
        elif kind == "@SQ" and "SN" in tags and tags.get("LN", "").isdigit():
            self.contigs[tags["SN"]] = int(tags["LN"])
            if "M5" in tags:
                self.md5s[tags["SN"]] = tags["M5"][:64].lower()


def read_header(path: Path) -> Header:
    """The header of a BAM or CRAM (as its name says), read through one descriptor of a regular
    file, opened without waiting (a FIFO is refused, not waited on); ValueError says why it is
    not what its name says (or not one this check reads)."""
    cram = path.name.endswith(".cram")
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("is not a regular file")
        head = f.read(4096)
        if not head:
            raise ValueError(f"is empty, not a {'CRAM' if cram else 'BAM'} file")
        if head.startswith(b"CRAM") != cram:
            raise ValueError(f"is a {'BAM' if cram else 'CRAM'} file named "
                             f".{path.suffix[1:]}; name it .{'bam' if cram else 'cram'}")
        return _read_cram(f) if cram else _read_bam(f, head)


def _read_bam(f: IO[bytes], head: bytes) -> Header:
    """`read_header` of a BAM file `f`, whose first bytes are `head`: @HD and @PG from the
    text, the contigs from the binary list that follows it."""
    f.seek(max(0, f.seek(0, os.SEEK_END) - len(BGZF_EOF)))
    tail = f.read()
    if b"\0" not in head:
        first = head.split(b"\n")[0]
        if first.startswith(b"@") or first.count(b"\t") >= 10:
            raise ValueError("is a SAM text file, not BAM; convert it with `samtools view -b`")
        raise ValueError("is a text file, not a BAM file")
    if not head.startswith(BGZF_MAGIC):
        kind = "gzip-compressed but not BGZF" if head.startswith(b"\x1f\x8b") else "not a BAM file"
        raise ValueError(f"is {kind} (no BGZF/BAM signature)")
    header = Header()
    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f) as g:
            if g.read(4) != b"BAM\1":
                raise ValueError("is BGZF-compressed but not BAM (no 'BAM\\1' magic)")
            size = _int32(g)
            if not 0 <= size <= MAX_HEADER_TEXT:
                raise ValueError(f"its header claims {size} bytes of text; more than "
                                 f"{MAX_HEADER_TEXT >> 20} MiB is not a header this check reads")
            for line in _sam_lines(g, size, (b"@HD", b"@PG", b"@CO\tRead group ")):
                header.take(line)
            count = _int32(g)
            if not 0 <= count <= MAX_CONTIGS:
                raise ValueError(f"its header claims {count} contigs; more than {MAX_CONTIGS} "
                                 "is not a header this check reads")
            for _ in range(count):
                name = _take(g, _int32(g)).rstrip(b"\0").decode()
                header.contigs[name] = _int32(g)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"is truncated or corrupt: cannot read its header ({exc})") from None
    if tail != BGZF_EOF:
        raise ValueError("is truncated (no BGZF end-of-file marker)")
    return header


def _itf8(stream: IO[bytes]) -> int:
    """A CRAM ITF-8 integer: 1 to 5 bytes, the leading 1 bits of the first counting the rest."""
    first = _take(stream, 1)[0]
    extra = min(4, 8 - len(f"{first:08b}".lstrip("1")))
    rest = _take(stream, extra)
    if extra == 4:
        value = ((first & 0x0F) << 28) | int.from_bytes(rest[:3], "big") << 4 | (rest[3] & 0x0F)
        return value - (1 << 32) if value >= 1 << 31 else value
    return ((first & (0x7F >> extra)) << (8 * extra)) | int.from_bytes(rest, "big")


def _ltf8(stream: IO[bytes]) -> int:
    """A CRAM LTF-8 integer: 1 to 9 bytes, the leading 1 bits of the first counting the rest."""
    first = _take(stream, 1)[0]
    extra = 8 - len(f"{first:08b}".lstrip("1"))
    return ((first & (0xFF >> (extra + 1))) << (8 * extra)) | \
        int.from_bytes(_take(stream, extra), "big")


_CRAM_METHODS = {0: None, 1: lambda: zlib.decompressobj(47), 2: bz2.BZ2Decompressor,
                 3: lzma.LZMADecompressor}


def _unpacked(f: IO[bytes], size: int, method: int) -> Iterator[bytes]:
    """The content of a CRAM block of `size` bytes stored by `method`, a chunk at a time (a
    chunk of input unpacks into chunks of at most CHUNK bytes)."""
    unpack = _CRAM_METHODS[method]() if _CRAM_METHODS[method] else None
    while size > 0:
        data = f.read(min(size, CHUNK))
        if not data:
            raise EOFError("unexpected end of data")
        size -= len(data)
        if unpack is None:
            yield data
        elif method == 1:  # zlib: what is left of the input waits in unconsumed_tail
            while not unpack.eof:
                out = unpack.decompress(data, CHUNK)
                data = unpack.unconsumed_tail
                if not out and not data:
                    break
                yield out
        else:  # bz2, lzma: they keep what is left of the input
            yield unpack.decompress(data, CHUNK)
            while not unpack.needs_input and not unpack.eof:
                yield unpack.decompress(b"", CHUNK)


class _Chunks(io.RawIOBase):
    """A stream of the byte chunks an iterator gives."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        while not self.rest:
            self.rest = next(self.chunks, None)
            if self.rest is None:
                self.rest = b""
                return 0
        size = min(len(buffer), len(self.rest))
        buffer[:size], self.rest = self.rest[:size], self.rest[size:]
        return size


def _read_cram(f: IO[bytes]) -> Header:
    """`read_header` of a CRAM 2.1 or 3.x file `f`: the SAM header is the first block of its
    first container, raw or compressed (gzip, bzip2, lzma), of up to MAX_HEADER_TEXT."""
    header = Header()
    try:
        f.seek(0)
        major = _take(f, 26)[4]  # 'CRAM', major, minor, a 20-byte file id
        if major not in CRAM_EOF:
            raise ValueError(f"is CRAM version {major}, which this check does not read "
                             "(2.1 and 3.x are read)")
        f.read(4)  # the container's length
        for _ in range(4):  # reference id, start, span, records
            _itf8(f)
        _ltf8(f), _ltf8(f)  # record counter, bases
        _itf8(f)  # blocks
        for _ in range(_itf8(f)):  # landmarks
            _itf8(f)
        f.read(4 if major == 3 else 0)  # CRC32
        method, content = _take(f, 2)
        _itf8(f)  # content id
        size, raw = _itf8(f), _itf8(f)
        if content != 0 or method not in _CRAM_METHODS:
            raise ValueError("its first block is not a SAM header this check reads")
        if not 0 <= size <= MAX_HEADER_TEXT or not 0 <= raw <= MAX_HEADER_TEXT + 4:
            raise ValueError(f"its header claims more than {MAX_HEADER_TEXT >> 20} MiB; "
                             "not a header this check reads")
        with io.BufferedReader(_Chunks(_unpacked(f, size, method)), CHUNK) as text:
            length = int.from_bytes(text.read(4), "little")
            if length > raw - 4:
                raise ValueError("is truncated or corrupt: its header is shorter than it "
                                 "claims")
            for line in _sam_lines(text, length, (b"@HD", b"@PG", b"@SQ",
                                                  b"@CO\tRead group ")):
                header.take(line)
        f.seek(max(0, f.seek(0, os.SEEK_END) - len(CRAM_EOF[major])))
        tail = f.read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"is truncated or corrupt: cannot read its header ({exc})") from None
    if tail not in (CRAM_EOF[major], _CRAM_EOF_HTSLIB.get(major)):
        raise ValueError("is truncated (no CRAM end-of-file container)")
    return header


def is_dedup_program(pg: dict[str, str]) -> bool:
    """True if a @PG record is a duplicate-marking or -removing step (or consensus calling)."""
    command = pg.get("CL", "")
    words = [pg.get("ID", ""), pg.get("PN", ""), *command.split(None, 2)[:2]]
    parts = (p for w in words for p in re.split(r"[\s/.:]+", w))
    if any(DEDUP_PROGRAM.fullmatch(p) for p in parts):
        return True
    for text in (pg.get("ID", ""), pg.get("PN", ""), " ".join(command.split(None, 3)[:3])):
        names = [os.path.basename(w).lower() for w in text.split()]
        for program, sub in zip(names, names[1:], strict=False):
            if sub in DEDUP_SUBCOMMANDS.get(program, ()):
                return program != "pbrun" or not PBRUN_NO_MARKDUPS.search(command)
    if SENTIEON_DEDUP.search(command):
        return True
    dragen = DRAGEN.search(f"{pg.get('ID', '')} {pg.get('PN', '')}")
    return bool(dragen and DRAGEN_DEDUP.search(command))


@dataclass
class Flags:
    """What `duplicate_flags` saw: ``found`` a record with the duplicate flag among ``records``
    read (``None``: the records could not be read); ``whole`` when they were all the file's;
    ``stopped`` why it read no further when that was neither the end nor a bound of the
    reading (truncated, corrupt, out of time, unreadable)."""

    found: bool
    records: int | None
    stopped: str = ""
    whole: bool = False


class _Budget(io.RawIOBase):
    """A read-only view of `raw` that ends after `limit` more bytes (raised with `extend`)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.left = raw, limit

    def readable(self) -> bool:
        return True

    def extend(self, more: int) -> None:
        self.left = more

    def readinto(self, buffer: memoryview) -> int:
        if self.left <= 0:
            return 0
        data = self.raw.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def duplicate_flags(path: Path, samtools: str | None = None) -> Flags:
    """Whether any of the first SCAN_RECORDS records of a BAM or CRAM (of at most SCAN_BYTES,
    SCAN_COMPRESSED and SCAN_SECONDS) has the duplicate flag 0x400. A BAM is read here, through
    one descriptor of a regular file; a CRAM through `samtools view` (`samtools`, else the one
    on PATH) asking for the flags only, so no reference is needed or fetched; without samtools
    a CRAM's records are not read (``records`` None)."""
    if path.name.endswith(".cram"):
        return _cram_flags(path, samtools or shutil.which("samtools"))
    deadline = time.monotonic() + SCAN_SECONDS
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return Flags(False, None, "it is not a regular file")
        # the header, as read_header admits it, compressed (stored blocks grow it a little)
        budget = _Budget(f, 2 * (MAX_HEADER_TEXT + MAX_NAMES + 8 * MAX_CONTIGS))
        records = 0
        try:
            with gzip.GzipFile(fileobj=io.BufferedReader(budget, CHUNK)) as g:
                if g.read(4) != b"BAM\1":
                    return Flags(False, None, "it is not a BAM file")
                _skip(g, _int32(g), MAX_HEADER_TEXT)
                count = _int32(g)
                if not 0 <= count <= MAX_CONTIGS:
                    return Flags(False, None, f"its header claims {count} contigs")
                for _ in range(count):
                    _skip(g, _int32(g), MAX_NAME)
                    _int32(g)
                budget.extend(SCAN_COMPRESSED)
                left = SCAN_BYTES
                while records < SCAN_RECORDS and left > 0:
                    head = g.read(4)
                    if not head:
                        return Flags(False, records, whole=True)  # the end of the records
                    size = struct.unpack("<i", head)[0] if len(head) == 4 else -1
                    if not 32 <= size <= MAX_RECORD:
                        return Flags(False, records, f"record {records + 1} is corrupt")
                    record = g.read(size)
                    if len(record) < size:
                        raise EOFError("unexpected end of data")
                    records += 1
                    left -= size + 4
                    if int.from_bytes(record[14:16], "little") & DUPLICATE:
                        return Flags(True, records)
                    if records % 4096 == 0 and time.monotonic() > deadline:
                        return Flags(False, records, f"{SCAN_SECONDS:.0f} s passed")
        except (OSError, EOFError, zlib.error) as exc:
            if budget.left <= 0:  # the bound, not the file's end
                return Flags(False, records)
            return Flags(False, records, f"it is truncated or corrupt ({exc})")
    return Flags(False, records)


def _skip(stream: IO[bytes], size: int, most: int) -> None:
    """Read past `size` bytes (at most `most`) of `stream`, a chunk at a time."""
    if not 0 <= size <= most:
        raise EOFError(f"implausible length {size}")
    while size > 0:
        data = stream.read(min(size, CHUNK))
        if not data:
            raise EOFError("unexpected end of data")
        size -= len(data)


def _cram_flags(path: Path, samtools: str | None) -> Flags:
    """`duplicate_flags` of a CRAM, read by `samtools view` decoding FLAG only (required_fields
    0x2: no sequence, so no reference; REF_PATH pointed nowhere so none is downloaded), its
    first SCAN_RECORDS lines taken and the rest left unread. samtools reads the descriptor
    opened here, as its standard input: the file checked (a /proc/self/fd link of ours would
    be another process's in samtools), and a FIFO is refused unopened by it."""
    if not samtools:
        return Flags(False, None, "samtools is not on PATH")
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return Flags(False, None, "it is not a regular file")
        os.set_blocking(f.fileno(), True)
        return _samtools_flags(f, samtools)


def _samtools_flags(cram: IO[bytes], samtools: str) -> Flags:
    """`_cram_flags` of the open file `cram`."""
    command = [samtools, "view", "--no-PG", "--input-fmt-option", "required_fields=0x2", "-"]
    env = {**os.environ, "REF_PATH": os.devnull, "REF_CACHE": os.devnull}
    records, found, stopped, ended = 0, False, "", False
    with subprocess.Popen(command, stdin=cram, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=env) as proc:  # fmt: skip
        out = proc.stdout
        assert out is not None
        fired = threading.Event()  # SCAN_SECONDS passed: samtools is killed (even if silent)
        timer = threading.Timer(SCAN_SECONDS, lambda: (fired.set(), proc.kill()))
        timer.start()
        try:
            while records < SCAN_RECORDS:
                line = out.readline(MAX_LINE)
                if not line:
                    ended = True  # samtools closed its output: it is ending
                    break
                fields = line.split(b"\t", 2)
                if len(fields) < 3 or not fields[1].isdigit():
                    stopped = "samtools wrote what is not a SAM record"
                    break
                records += 1
                if int(fields[1]) & DUPLICATE:
                    found = True
                    break
        finally:
            timer.cancel()
            if ended:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            proc.kill()
            proc.wait()
        if ended and fired.is_set():
            stopped = f"{SCAN_SECONDS:.0f} s passed"
        elif ended and proc.returncode:
            stopped = f"samtools could not read it (exit status {proc.returncode})"
    return Flags(found, records, stopped, whole=ended and not stopped)

