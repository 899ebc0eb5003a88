#!/usr/bin/env python3
"""Check a CNVkit job's inputs before CNVkit sees them, and report every problem at once.

Usage: check_inputs.py [--ref REF.fa] [--bed TARGETS.bed] [--annotation FILE]
                       [--bam NAME=PATH ...] [--reference-cnn REFERENCE.cnn
                       [--option FIELD=ARGS ...]] [--check-options FILE] [--json]
                       [--indexes FILE [--indexes-only]]
                       [--max-memory BYTES] [--max-cpu-seconds N] [--nice N]

It also decides, once for every caller, which indexes are used as they are and which are
built (`--indexes FILE`: `{"fai": true|false, "bai": {"NAME": SUFFIX|null}}`, SUFFIX one of
".bam.bai", ".bai" for a BAM, ".cram.crai", ".crai" for a CRAM):
a `.fai` is used when it is not older than the FASTA and describes it, a BAM index when it is
not older than the BAM (beside the path given, else beside the file a link points to).
`--indexes-only` makes only these decisions (cheap: no BAM or FASTA is read whole).

`--check-options FILE` checks the job's option strings (`--option FIELD=ARGS`) with CNVkit's
own parsers, by the rules of `cnvkit_options.py` that the launcher applies too, and writes
what each becomes: `{"FIELD": {"args": "re-quoted, without -p", "processes": N|null}}`. It
needs CNVkit (the pipeline runs it in CNVkit's container or conda environment).

Every check streams: of what is wrong it keeps counts and the first few examples, and a file
may bring at most MAX_CONTIGS contig names of MAX_NAMES bytes in all, so what a check costs does
not grow with what a small crafted file unfolds into. `--max-memory` and `--max-cpu-seconds`
make that a limit the process sets on itself before it reads any file (its address space, its
CPU time), and `--nice` lowers its priority; the caller
(`cnvkit_nf/launch/local_files.py`) gives them.
A check that needs more memory, or more CPU time, than allowed ends as a problem of the file it
was reading, not as a traceback (for the CPU: the files after it are not checked). The limits
suit the file checks; `--check-options` imports CNVkit, which needs more.

Exit status 0 if the inputs are usable (warnings allowed), 1 if any error was found. Problems
are printed one per line (``error: FILE: reason``), or with ``--json`` as
``{"problems": [{"file", "message", "severity"}], "notes": [...]}``.

Standard library only (plus ``annotation_to_bed.py`` and ``reference_record.py`` from this
directory: the annotation format sniffing, and what a reused reference was built from; and
CNVkit for `--check-options`): the pipeline also runs it inside CNVkit containers.
"""

import argparse
import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import resource
import signal
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotation_to_bed import FORMATS, is_gzip, sniff_format  # noqa: E402
from reference_record import cnvkit_version, contradictions, record_path  # noqa: E402
from reference_record import read as read_record  # noqa: E402

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
# The end-of-file container of CRAM 3.x, and of CRAM 2.1 (without CRC32s).
CRAM_EOF = {3: bytes.fromhex("0f000000ffffffff0fe0454f46000000000100"
                             "05bdd94f0001000606010001000100ee63014b"),
            2: bytes.fromhex("0b000000ffffffffffe0454f4600000000010000010006060100010001"
                             "00")}
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Program names (from @PG ID, PN or the first two words of CL) of duplicate markers/removers.
DEDUP_PROGRAM = re.compile(
    r"markdup|rmdup|markduplicates(withmatecigar|spark)?|bammarkduplicates\d*|bamsormadup"
    r"|samblaster",
    re.IGNORECASE,
)
# DRAGEN marks duplicates inside its one program; only its command line says so.
DRAGEN = re.compile(r"dragen", re.IGNORECASE)
DRAGEN_DEDUP = re.compile(r"--enable-duplicate-marking(?:=|\s+)true\b", re.IGNORECASE)
DEDUP_TOOLS = (
    "samtools markdup/rmdup, Picard or GATK MarkDuplicates (incl. MarkDuplicatesWithMateCigar, "
    "MarkDuplicatesSpark), sambamba markdup, SAMBLASTER, biobambam "
    "bammarkduplicates/bamsormadup, DRAGEN with --enable-duplicate-marking true"
)
EXAMPLES = 3
File = str | Path  # input files are reported exactly as they were given
# Bounds on what the checks read, so that a small crafted file cannot cost gigabytes.
MAX_HEADER_TEXT = 64 << 20  # a BAM's SAM header text
MAX_CONTIGS = 100_000  # distinct contigs of a file (a genome has a few thousand at most)
MAX_NAMES = 8 << 20  # bytes of a file's distinct contig names, in all
MAX_NAME = 4096  # a BAM contig name
MAX_SHOWN = 80  # characters of a name shown in a message
MAX_LINE = 1 << 20  # a line of a BED, interval list, .fai or annotation
MAX_FASTA_HEADER = 1 << 16  # a FASTA '>' line
CHUNK = 1 << 20


@dataclass
class Problem:
    """One finding about one input file."""

    file: str
    message: str
    severity: str  # "error" or "warning"


@dataclass
class Report:
    """Everything found so far: problems (errors, warnings) and informational notes."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    indexes: dict = field(default_factory=lambda: {"fai": False, "bai": {}})

    def error(self, file: str | Path, message: str) -> None:
        self.problems.append(Problem(str(file), message, "error"))

    def warning(self, file: str | Path, message: str) -> None:
        self.problems.append(Problem(str(file), message, "warning"))

    def note(self, file: str | Path, message: str) -> None:
        self.notes.append(f"{file}: {message}")

    @property
    def ok(self) -> bool:
        """True if no problem is an error."""
        return all(p.severity != "error" for p in self.problems)


def examples(names: Iterable[str], total: int | None = None) -> str:
    """The first few names (a long one cut short), and how many there are in all if more."""
    names = list(names)
    total = len(names) if total is None else total
    shown = ", ".join(n if len(n) <= MAX_SHOWN else f"{n[:MAX_SHOWN]}..." for n in names[:EXAMPLES])
    return shown if total <= EXAMPLES else f"{shown}, ... ({total} in all)"


@dataclass
class Tally:
    """How many findings of one kind, and the first few of them: a file with millions of bad
    lines costs the check no more than one with four."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, finding: str) -> None:
        self.count += 1
        if len(self.first) < EXAMPLES:
            self.first.append(finding)

    def __bool__(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return examples(self.first, self.count)


class TooLarge(ValueError):
    """A file brings more than this check reads."""


def admit_names(count: int, size: int) -> None:
    """Refuse (TooLarge) a file's `count`-th distinct contig name when they number more than
    MAX_CONTIGS or take more than MAX_NAMES bytes in all (`size`): each one costs the check
    memory, and no genome has that many."""
    if count > MAX_CONTIGS:
        raise TooLarge(f"has more than {MAX_CONTIGS} contigs, more than this check reads")
    if size > MAX_NAMES:
        raise TooLarge(f"has contig names of more than {MAX_NAMES >> 20} MiB in all, more "
                       "than this check reads")


class Contigs(dict):
    """`{contig: value}` of one file, its names bounded by `admit_names`."""

    size = 0  # bytes of the names

    def __setitem__(self, name: str, value: object) -> None:
        if name not in self:
            self.size += len(name)
            admit_names(len(self) + 1, self.size)
        super().__setitem__(name, value)


# --- the check's own limits --------------------------------------------------------------------

CPU_GRACE = 10  # seconds of CPU between SIGXCPU and the kernel's SIGKILL


class OutOfTime(BaseException):
    """The check used the `seconds` of CPU time it allows itself (SIGXCPU): not an Exception,
    so that no handler of a file's errors takes it for one. `where` is the file being read, and
    what."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.where: tuple[File, str] | None = None


def _set_limit(kind: int, soft: int, hard: int) -> None:
    """Lower a resource limit (never above the hard limit already in force)."""
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


def limit_resources(memory: int | None, cpu_seconds: int | None, nice: int) -> None:
    """Bound this process before it reads any file: its address space (an allocation beyond
    raises MemoryError), its CPU time (SIGXCPU raises OutOfTime; the kernel kills the process
    CPU_GRACE seconds later if that is not enough) and its scheduling priority."""
    if memory:
        _set_limit(resource.RLIMIT_AS, memory, memory)
    if cpu_seconds:

        def out_of_time(signum: int, frame: object) -> None:
            signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # once: the report is written next
            raise OutOfTime(cpu_seconds)

        signal.signal(signal.SIGXCPU, out_of_time)
        _set_limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + CPU_GRACE)
    if nice:
        os.nice(nice)


@contextlib.contextmanager
def reading(file: File, what: str, report: Report) -> Iterator[None]:
    """Check `file` (doing `what`): a MemoryError becomes a problem of the file, and running out
    of CPU time (OutOfTime) is marked with it for `main` to report."""
    try:
        yield
    except MemoryError:
        allowed, _ = resource.getrlimit(resource.RLIMIT_AS)
        report.error(file, f"needs more memory than there is: {what}"
                     if allowed == resource.RLIM_INFINITY else
                     f"needs more memory than the input check allows ({allowed / 1e6:.0f} MB): "
                     f"{what}")
    except OutOfTime as exc:
        exc.where = exc.where or (file, what)
        raise


def out_of_time(exc: OutOfTime, report: Report) -> None:
    """Report the check that ran out of CPU time, on the file it was reading."""
    file, what = exc.where or ("", "checking the inputs")
    report.error(file, f"the input check took more than {exc.seconds} s of CPU {what} and was "
                 "stopped there; the inputs after it were not checked")


def _readable(file: File, report: Report) -> bool:
    """Report a missing, unreadable or non-regular file; True if it can be read."""
    path = Path(file)
    if not path.exists():
        report.error(file, "does not exist")
    elif not path.is_file():
        report.error(file, "is not a regular file")
    elif not os.access(path, os.R_OK):
        report.error(file, "cannot be read (permission denied)")
    else:
        return True
    return False


def _chr_hint(ours: Iterable[str], theirs: Iterable[str]) -> str:
    """A hint if the names only differ by a ``chr`` prefix."""
    stripped = {n.removeprefix("chr") for n in theirs}
    common = any(n.removeprefix("chr") in stripped for n in ours)
    return " (they differ in the 'chr' prefix)" if common else ""


# --- BAM files ---------------------------------------------------------------------------------


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
    deduplicated: bool = False  # a @PG line of a duplicate marker
    contigs: Contigs = field(default_factory=Contigs)  # {name: length}
    md5s: dict[str, str] = field(default_factory=dict)  # {name: M5 of its @SQ line} (CRAM)
    seen_hd: bool = False

    def take(self, line: str) -> None:
        """Take an @HD, @PG or @SQ line."""
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
    """The header of a BAM or CRAM; ValueError says why it is not what its name says (or not
    one this check reads)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    cram = path.name.endswith(".cram")
    if not head:
        raise ValueError(f"is empty, not a {'CRAM' if cram else 'BAM'} file")
    if head.startswith(b"CRAM") != cram:
        raise ValueError(f"is a {'BAM' if cram else 'CRAM'} file named .{path.suffix[1:]}; "
                         f"name it .{'bam' if cram else 'cram'}")
    return read_cram_header(path) if cram else read_bam_header(path, head)


def read_bam_header(path: Path, head: bytes) -> Header:
    """`read_header` of a BAM file, whose first bytes are `head`: @HD and @PG from the text,
    the contigs from the binary list that follows it."""
    with open(path, "rb") as f:
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
    try:
        with gzip.open(path) as g:
            if g.read(4) != b"BAM\1":
                raise ValueError("is BGZF-compressed but not BAM (no 'BAM\\1' magic)")
            size = _int32(g)
            if not 0 <= size <= MAX_HEADER_TEXT:
                raise ValueError(f"its header claims {size} bytes of text; more than "
                                 f"{MAX_HEADER_TEXT >> 20} MiB is not a header this check reads")
            for line in _sam_lines(g, size, (b"@HD", b"@PG")):
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


def read_cram_header(path: Path) -> Header:
    """`read_header` of a CRAM 2.1 or 3.x file: the SAM header is the first block of its first
    container, raw or compressed (gzip, bzip2, lzma), of up to MAX_HEADER_TEXT."""
    header = Header()
    try:
        with open(path, "rb") as f:
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
                for line in _sam_lines(text, length, (b"@HD", b"@PG", b"@SQ")):
                    header.take(line)
            f.seek(max(0, f.seek(0, os.SEEK_END) - len(CRAM_EOF[major])))
            tail = f.read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"is truncated or corrupt: cannot read its header ({exc})") from None
    if tail != CRAM_EOF[major]:
        raise ValueError("is truncated (no CRAM end-of-file container)")
    return header


def is_dedup_program(pg: dict[str, str]) -> bool:
    """True if a @PG record is a duplicate-marking or -removing step."""
    words = [pg.get("ID", ""), pg.get("PN", ""), *pg.get("CL", "").split(None, 2)[:2]]
    parts = (p for w in words for p in re.split(r"[\s/.:]+", w))
    if any(DEDUP_PROGRAM.fullmatch(p) for p in parts):
        return True
    dragen = DRAGEN.search(f"{pg.get('ID', '')} {pg.get('PN', '')}")
    return bool(dragen and DRAGEN_DEDUP.search(pg.get("CL", "")))


# Where the index of X.bam or X.cram is looked for (as samtools and CNVkit look).
INDEX_SUFFIXES = {".bam": (".bam.bai", ".bai"), ".cram": (".cram.crai", ".crai")}


def find_index(bam: Path) -> str | None:
    """Which index beside a BAM or CRAM (``X.bam.bai`` or ``X.bai``; ``X.cram.crai`` or
    ``X.crai``: a suffix of its path without its own) is not older than it: beside the path
    given, else beside the file a link points to; None when the index must be built (a
    ``.csi`` alone is not used)."""
    for place in dict.fromkeys([bam, bam.resolve()]):
        stem, kind = os.path.splitext(str(place))
        for suffix in INDEX_SUFFIXES.get(kind, ()):
            index = Path(stem + suffix)
            if index.is_file() and index.stat().st_mtime >= place.stat().st_mtime:
                return suffix
    return None


def check_bam(file: File, report: Report) -> Header | None:
    """Check one BAM or CRAM file; return its header if it could be read."""
    path = Path(file)
    if not _readable(file, report):
        return None
    try:
        header = read_header(path)
    except ValueError as exc:
        report.error(file, str(exc))
        return None
    if header.sort_order != "coordinate":
        order = f"SO:{header.sort_order}" if header.sort_order is not None else "no @HD SO tag"
        report.error(file, f"not coordinate-sorted ({order}); sort it with `samtools sort`")
    if not header.deduplicated:
        report.error(
            file,
            "duplicates are not marked or removed (no such @PG header line); "
            f"process it with one of: {DEDUP_TOOLS}",
        )
    if not header.contigs:
        report.error(file, "has no reference contigs (@SQ); is it aligned?")
    return header


def check_cram_reference(cram: File, stated: dict[str, str], ref: File,
                         md5s: Callable[[], dict[str, str]], report: Report) -> None:
    """A CRAM stores its reads as differences from a reference: the FASTA must hold the very
    sequences it was written against, as the MD5s of its @SQ lines (M5 tags, `stated`) say."""
    if not stated:
        report.warning(cram, "has no M5 tags on its @SQ lines: that it was written against "
                       f"{ref} could not be checked")
        return
    ours = md5s()
    differ = [name for name, md5 in stated.items() if name in ours and ours[name] != md5]
    if differ:
        report.error(cram, f"was written against another reference than {ref}: the sequence "
                     f"of {examples(differ)} differs (the MD5 of its @SQ M5 tag); give the "
                     "FASTA it was written with")


def compare_contigs(
    bam: File, contigs: dict[str, int], ref: File, ref_contigs: dict[str, int], report: Report
) -> bool:
    """A BAM or CRAM must share contig names with the reference, with the same lengths;
    contigs on one side only (another variant of the build?) are a warning. False when they
    disagree."""
    if not any(c in ref_contigs for c in contigs):
        report.error(
            bam,
            f"no contig name in common with the reference {ref} (BAM: {examples(contigs)}; "
            f"reference: {examples(ref_contigs)}){_chr_hint(contigs, ref_contigs)}",
        )
        return False
    differ = Tally()
    for c, length in contigs.items():
        if c in ref_contigs and length != ref_contigs[c]:
            differ.add(f"{c} (BAM {length}, reference {ref_contigs[c]})")
    if differ:
        report.error(
            bam,
            f"contig lengths differ from the reference {ref}: {differ}; "
            "was it aligned to another genome build?",
        )
    only_bam = [c for c in contigs if c not in ref_contigs]
    only_ref = [c for c in ref_contigs if c not in contigs]
    if only_bam or only_ref:
        sides = [f"only in the BAM: {examples(only_bam)}" if only_bam else "",
                 f"only in the reference: {examples(only_ref)}" if only_ref else ""]
        report.warning(bam, f"contigs differ from the reference {ref} ("
                       + "; ".join(side for side in sides if side)
                       + "); reads on contigs the reference lacks are not counted")
    return not differ


# --- reference FASTA ---------------------------------------------------------------------------


def text_lines(handle: IO[str]) -> Iterator[str]:
    """The lines of a text file; ValueError names a line longer than MAX_LINE characters."""
    for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE + 1), ""), 1):
        if len(line) > MAX_LINE:
            raise ValueError(f"line {number} is longer than {MAX_LINE} characters")
        yield line


def read_fai(fai: Path) -> list[tuple[str, int, int, int, int]]:
    """The rows of a FASTA index: name, length, offset, bases and bytes per line."""
    rows = []
    size = 0  # of the names
    with open(fai, encoding="utf-8", errors="replace") as f:
        for line in text_lines(f):
            if line.strip():
                name, length, offset, bases, width = line.split("\t")[:5]
                size += len(name)
                admit_names(len(rows) + 1, size)
                rows.append((name, int(length), int(offset), int(bases), int(width)))
    return rows


def fai_describes(path: Path, rows: list[tuple[str, int, int, int, int]]) -> bool:
    """Whether a plain FASTA holds exactly the sequences its index lists, in order: before
    each one's first base there is only its own '>' line (a sequence the indexer skipped,
    such as a second one of the same name, would be there too). Reads a line per contig."""
    end = 0
    with open(path, "rb") as f:
        for name, length, offset, bases, width in sorted(rows, key=lambda row: row[2]):
            if not 0 < offset - end <= MAX_FASTA_HEADER or bases < 1:
                return False
            f.seek(end)
            header = re.fullmatch(rb"\s*>(\S+)[^\n]*\n", f.read(offset - end))
            if header is None or header.group(1).decode("utf-8", "replace") != name:
                return False
            lines, rest = divmod(length, bases)
            end = offset + lines * width + rest
        f.seek(end)
        return not f.read(MAX_FASTA_HEADER).strip()


def scan_fasta(path: Path, md5s: dict[str, str] | None = None
               ) -> tuple[dict[str, int], list[str]]:
    """``{contig: length}`` by reading the whole FASTA (plain or gzipped) a chunk at a time,
    and the names that more than one sequence has; into `md5s` when given, the MD5 of each
    sequence as SAM's M5 tag has it (upper case, no white space), each made as it is read."""
    lengths = Contigs()
    repeated: dict[str, None] = {}  # in the order found
    name, header, line_start, digest = None, None, True, None
    with _open_binary(path) as f:
        while chunk := f.read(CHUNK):
            at = 0
            while at < len(chunk):
                if header is not None:  # inside a '>' line
                    end = chunk.find(b"\n", at)
                    header += chunk[at:len(chunk) if end < 0 else end]
                    if len(header) > MAX_FASTA_HEADER:
                        raise ValueError(f"has a '>' line longer than {MAX_FASTA_HEADER} bytes")
                    if end < 0:
                        break
                    if md5s is not None and name is not None:
                        md5s[name] = digest.hexdigest()
                    name = header.split(None, 1)[0].decode("utf-8", "replace") if \
                        header.strip() else ""
                    if name in lengths:
                        repeated[name] = None
                    lengths[name] = 0
                    digest = hashlib.md5(usedforsecurity=False) if md5s is not None else None
                    header, at, line_start = None, end + 1, True
                elif line_start and chunk[at] == ord(">"):
                    header, at = bytearray(), at + 1
                else:  # sequence, up to the next '>' line
                    end = chunk.find(b"\n>", at)
                    stop = len(chunk) if end < 0 else end + 1
                    if name is not None:
                        bases = chunk[at:stop].translate(None, b" \t\r\n")
                        lengths[name] += len(bases)
                        if digest is not None:
                            digest.update(bases.upper())
                    line_start, at = chunk[stop - 1] == ord("\n"), stop
    if md5s is not None and name is not None:
        md5s[name] = digest.hexdigest()
    return lengths, list(repeated)


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path) if is_gzip(path) else open(path, "rb")


def check_reference(file: File, report: Report) -> dict[str, int] | None:
    """Check the reference FASTA; return its contig lengths."""
    path = Path(file)
    if not _readable(file, report):
        return None
    try:
        with _open_binary(path) as f:
            first = f.read(MAX_FASTA_HEADER).lstrip()
    except (OSError, EOFError) as exc:
        report.error(file, f"cannot be read as a FASTA file ({exc})")
        return None
    if not first.startswith(b">"):
        report.error(file, "is not a FASTA file (its first line does not start with '>')")
        return None
    lengths, repeated = _indexed_contigs(file, path, report)
    if lengths is None:
        try:
            lengths, repeated = scan_fasta(path)
        except TooLarge as exc:
            report.error(file, str(exc))
            return None
        except (OSError, EOFError, ValueError) as exc:
            report.error(file, f"cannot be read as a FASTA file ({exc})")
            return None
    if repeated:
        report.error(file, f"more than one sequence is named {examples(repeated)}: only the "
                     "first word of a '>' line names a contig (so '>chr 1' and '>chr 2' are "
                     "both 'chr'), and CNVkit needs unique names; rename them")
    return lengths


def usable_fai(file: File, report: Report) -> list | None:
    """The rows of the FASTA's .fai when it is used as it is: not older than the FASTA, valid,
    describing it; None (and why, in the report) when the pipeline builds a new one."""
    path = Path(file)
    fai = Path(f"{path}.fai")
    if not fai.is_file() or fai.stat().st_mtime < path.stat().st_mtime:
        report.note(file, "no up-to-date .fai index: it will be built")
        return None
    try:
        rows = read_fai(fai)
    except (OSError, ValueError) as exc:
        report.warning(fai, f"is not a valid FASTA index ({exc}); a new one will be built")
        return None
    if not is_gzip(path) and not fai_describes(path, rows):
        report.warning(fai, "does not describe the FASTA (stale, or sequences were skipped "
                       "when it was built); a new one will be built")
        return None
    return rows


def _indexed_contigs(file: File, path: Path, report: Report) -> tuple[dict | None, list[str]]:
    """Contig lengths and repeated names from the .fai when it is used; (None, []) when the
    FASTA itself must be read."""
    rows = usable_fai(file, report)
    report.indexes["fai"] = rows is not None
    if rows is None:
        return None, []
    names = Counter(row[0] for row in rows)
    return {row[0]: row[1] for row in rows}, [name for name, n in names.items() if n > 1]


def decide_indexes(ref: File | None, bams: dict[str, File], report: Report) -> None:
    """Which indexes are used as they are (the rest are built), into `report.indexes`: the
    FASTA's (unless `ref` is None: `check_reference` decides it as it reads the contigs) and
    each BAM's."""
    if ref is not None and Path(ref).is_file():
        report.indexes["fai"] = usable_fai(ref, report) is not None
    for name, bam in bams.items():
        report.indexes["bai"][name] = None
        if Path(bam).is_file():
            report.indexes["bai"][name] = find_index(Path(bam))
            if report.indexes["bai"][name] is None:
                kind = ".crai" if str(bam).endswith(".cram") else ".bai"
                report.note(bam, f"no up-to-date index ({kind}) next to it; the index will be "
                            "built")


# --- target regions ----------------------------------------------------------------------------


# Lines of a target file that CNVkit cannot read (its BED reader takes one 'browser' line,
# then one 'track' line, at the top only; it stops at a later 'track' line).
UNREAD = {
    "comment": "has comment lines ('#'), which CNVkit cannot read; remove them "
               "(grep -v '^#')",
    "blank": "has blank lines, which CNVkit cannot read in a BED; remove them",
    "track": "has a 'track' line after its top: CNVkit stops reading there and would ignore "
             "the intervals after it; split the file or remove the line",
    "browser": "has a 'browser' line that is not its first line, which CNVkit cannot read; "
               "remove it",
}


def _unread(line: str, kind: str) -> str | None:
    """Why CNVkit cannot read a line of a target file (a key of UNREAD), or None."""
    if line.startswith("#"):
        return "comment"
    if kind == "interval list":
        return None
    if not line.strip():
        return "blank"
    return next((key for key in ("track", "browser") if line.startswith(key)), None)


# Why CNVkit would fail on an interval or skip it: its contig is written with white space (not
# the name of any FASTA contig: that is the first word of its '>' line).
SPACED = ("contig names must not contain white space: {}; no reference names a contig so (a "
          "FASTA's contig is the first word of its '>' line), and CNVkit would drop these "
          "intervals or fail on them: write each contig as the reference names it")


@dataclass
class Targets:
    """What is found in a target file, line by line."""

    kind: str = "BED"  # or "interval list"
    bad: Tally = field(default_factory=Tally)  # lines that cannot be parsed
    spaced: Tally = field(default_factory=Tally)  # contigs with white space
    negative: Tally = field(default_factory=Tally)
    inverted: Tally = field(default_factory=Tally)
    unread: dict[str, Tally] = field(  # lines CNVkit cannot read, by key of UNREAD
        default_factory=lambda: {key: Tally() for key in UNREAD})
    contigs: Contigs = field(default_factory=Contigs)  # {contig: intervals}

    def interval(self, line: str, number: int) -> None:
        """Check one interval line; record what is wrong with it."""
        if not line.strip():
            return  # a blank line of an interval list, which CNVkit skips
        cols = line.split("\t")
        if len(cols) < 3:
            why = "not tab-separated" if len(line.split()) >= 3 else "fewer than 3 columns"
            self.bad.add(f"line {number}: {why}: {line[:60]!r}")
            return
        try:
            start, end = int(cols[1]), int(cols[2])
        except ValueError:
            self.bad.add(f"line {number}: start and end are not integers: {line[:60]!r}")
            return
        if re.search(r"\s", cols[0]):
            self.spaced.add(f"{cols[0][:60]!r} (line {number})")
            return
        if self.kind == "interval list":
            start -= 1  # 1-based, closed
        if start < 0 or end < 0:
            self.negative.add(f"line {number}: {cols[1]} {cols[2]}")
        elif start >= end:
            self.inverted.add(f"line {number}: {cols[1]} {cols[2]}")
        self.contigs[cols[0]] = self.contigs.get(cols[0], 0) + 1


def check_targets(
    file: File, ref: File, ref_contigs: dict[str, int] | None, report: Report
) -> None:
    """Check a BED or Picard interval_list of target regions: plain text, as CNVkit reads."""
    path = Path(file)
    if not _readable(file, report):
        return
    if is_gzip(path):
        plain = path.name.removesuffix(".gz") if path.name.endswith(".gz") else \
            f"{path.stem}.plain{path.suffix}"
        report.error(file, "is gzip-compressed; CNVkit reads target files as plain text: "
                     f"decompress it (gunzip -c {path.name} > {plain}) and give that file")
        return
    found = Targets()
    headers = ("browser ", "track")  # what CNVkit skips at the top of a BED, in this order
    with open(path, encoding="utf-8", errors="replace") as f:
        try:
            for number, line in enumerate(text_lines(f), 1):
                line = line.rstrip("\r\n")
                if number == 1 and line.startswith(("@HD", "@SQ")):
                    found.kind, headers = "interval list", ()
                header = next((h for h in headers if line.startswith(h)), None)
                headers = headers[headers.index(header) + 1:] if header else ()
                if header or (found.kind == "interval list" and line.startswith("@")):
                    continue
                why = _unread(line, found.kind)
                if why:
                    found.unread[why].add(f"line {number}")
                    continue
                found.interval(line, number)
        except TooLarge as exc:
            report.error(file, f"{found.kind} {exc}")
            return
        except ValueError as exc:
            report.error(file, f"is not a {found.kind} file: {exc}")
            return
    kind, contigs = found.kind, found.contigs
    for why, lines in found.unread.items():
        if lines:
            report.error(file, f"{kind} {UNREAD[why]}: {lines}")
    if found.bad:
        report.error(file, f"{kind} cannot be parsed: {found.bad}")
    if found.spaced:
        report.error(file, f"{kind} {SPACED.format(found.spaced)}")
    for lines, what in ((found.negative, "negative coordinates"),
                        (found.inverted, "start is not before end")):
        if lines:
            report.error(file, f"{kind} {what}: {lines}")
    if not contigs:
        if not (found.bad or found.spaced or any(found.unread.values())):
            report.error(file, f"{kind} has no intervals")
        return
    report.note(file, f"{kind} with {sum(contigs.values())} intervals on {len(contigs)} contigs")
    if ref_contigs is None:
        return
    missing = [c for c in contigs if c not in ref_contigs]
    if len(missing) == len(contigs):
        report.error(
            file,
            f"no {kind} contig is in the reference {ref} ({kind}: {examples(contigs)}; "
            f"reference: {examples(ref_contigs)}){_chr_hint(contigs, ref_contigs)}",
        )
    elif missing:
        n = sum(contigs[c] for c in missing)
        report.warning(
            file,
            f"{len(missing)} of {len(contigs)} {kind} contigs are not in the reference {ref} "
            f"(e.g. {examples(missing)}); their {n} intervals will get no coverage",
        )


# --- annotation --------------------------------------------------------------------------------


def check_annotation(file: File, report: Report) -> None:
    """The annotation must be GFF3, GTF, refFlat/genePred or BED (plain or gzipped)."""
    path = Path(file)
    if not _readable(file, report):
        return
    fmt = sniff_format(path)
    if fmt is None:
        expected = ", ".join(FORMATS.values())
        report.error(file, f"is not a recognised annotation format (expected {expected})")
    else:
        gz = " (gzip-compressed)" if is_gzip(path) else ""
        report.note(file, f"annotation format {FORMATS[fmt]}{gz}")


# --- a reference built earlier -----------------------------------------------------------------

# The columns of a CNVkit reference (.cnn); `spread` tells it from a sample's coverage.
REFERENCE_COLUMNS = ("chromosome", "start", "end", "gene", "log2", "depth", "spread")
UNCHECKED = ("the FASTA's content", "the target, antitarget, coverage and reference options it "
             "was built with", "the CNVkit version")


def reference_ends(path: Path) -> dict[str, int]:
    """`{contig: largest bin end}` of a CNVkit reference; ValueError says why it is not one."""
    ends = Contigs()
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = text_lines(handle)
        header = next(lines, "").rstrip("\n").split("\t")
        missing = [c for c in REFERENCE_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"its header lacks the column(s) {', '.join(missing)} (a reference "
                             f"has {', '.join(REFERENCE_COLUMNS)})")
        at = [header.index(c) for c in ("chromosome", "start", "end")]
        for number, line in enumerate(lines, 2):
            fields = line.rstrip("\n").split("\t")
            try:
                contig, start, end = fields[at[0]], int(fields[at[1]]), int(fields[at[2]])
            except (IndexError, ValueError):
                raise ValueError(f"line {number} is not a bin (chromosome, start, end)") from None
            if not 0 <= start < end:
                raise ValueError(f"line {number} has start {start} and end {end}")
            if end > ends.get(contig, 0):
                ends[contig] = end
    if not ends:
        raise ValueError("it has no bins")
    return ends


def check_reference_cnn(file: File, ref: File | None, ref_contigs: dict[str, int] | None,
                        options: dict[str, str], report: Report) -> None:
    """A reference to reuse: a CNVkit reference on the FASTA's contigs; when its record is
    beside it, built on this very FASTA with options this job does not contradict."""
    if not _readable(file, report):
        return
    try:
        ends = reference_ends(Path(file))
    except TooLarge as exc:
        report.error(file, str(exc))
        return
    except (OSError, ValueError) as exc:
        report.error(file, f"is not a CNVkit reference: {exc}")
        return
    if ref_contigs is not None:
        unknown = [c for c in ends if c not in ref_contigs]
        beyond = Tally()
        for c, end in ends.items():
            if c in ref_contigs and end > ref_contigs[c]:
                beyond.add(f"{c} ({end} > {ref_contigs[c]})")
        if unknown or beyond:
            report.error(file, f"was built on other contigs than those of {ref}: "
                         + (f"not in it: {examples(unknown)}{_chr_hint(unknown, ref_contigs)}"
                            if unknown else f"bins beyond the contig's end: {beyond}"))
            return
    where = Path(record_path(str(file)))
    try:
        record = read_record(where)
    except (OSError, ValueError) as exc:
        report.error(where, f"{exc}; remove it, or give the record written with the reference")
        return
    if record is None:
        report.warning(file, f"has no record of how it was built ({where.name} beside it, as "
                       "this pipeline writes): only its contigs were checked against the "
                       f"FASTA; not checked: {', '.join(UNCHECKED)}")
        return
    if ref_contigs is not None:
        for reason in contradictions(record, options, Path(ref), ref_contigs):
            report.error(file, f"cannot be reused: {reason}")
    installed = cnvkit_version()
    if installed and record.get("cnvkit") != installed:
        report.warning(file, f"was built with CNVkit {record.get('cnvkit')}; this is CNVkit "
                       f"{installed}")
    controls = record.get("controls") or []
    report.note(file, f"reference built from {len(controls)} control(s): "
                f"{', '.join(map(str, controls)) or 'none (flat)'}")


def check_options(options: dict[str, str], report: Report) -> dict[str, dict]:
    """The option strings checked with CNVkit's parsers (problems go to the report): what
    each accepted one becomes, `{"args": re-quoted string without -p, "processes": N|None}`."""
    from cnvkit_options import check_all, stage_options  # imports CNVkit where it is installed

    checked, found = check_all(options)
    for problem in found:
        add = report.error if problem.severity == "error" else report.warning
        add(problem.field, problem.message)
    return stage_options(checked)


# --- command line ------------------------------------------------------------------------------

# What the check of each input does, for a problem saying it needs more memory or time.
READING = {
    "ref": "reading its contigs (all of the FASTA, unless an up-to-date .fai lies beside it: "
           "`samtools faidx` makes one)",
    "md5": "reading the MD5 of each of its sequences, for a CRAM's M5 tags",
    "fai": "reading its .fai",
    "bam": "reading its header",
    "bed": "reading its intervals",
    "annotation": "telling its format",
    "reference_cnn": "reading its bins",
}


def check_inputs(
    ref: File | None, bed: File | None, bams: dict[str, File], annotation: File | None = None,
    reference_cnn: File | None = None, options: dict[str, str] | None = None,
    report: Report | None = None,
) -> Report:
    """Run every check on the files given (a caller that already found a file unusable leaves
    it out) and collect the results (into `report` if given); `options` are the job's option
    strings by field."""
    report = report if report is not None else Report()
    ref_contigs = None
    if ref is not None:
        with reading(ref, READING["ref"], report):
            ref_contigs = check_reference(ref, report)
    decide_indexes(None, bams, report)
    md5s: dict[str, str] = {}
    scanned = False

    def ref_md5s() -> dict[str, str]:  # read once, for the first CRAM that needs them
        nonlocal scanned
        if not scanned:
            scanned = True
            with reading(ref, READING["md5"], report):
                scan_fasta(Path(ref), md5s)
        return md5s

    for bam in bams.values():
        with reading(bam, READING["bam"], report):
            header = check_bam(bam, report)
            if header and ref_contigs:
                agree = compare_contigs(bam, header.contigs, ref, ref_contigs, report)
                if agree and str(bam).endswith(".cram"):
                    check_cram_reference(bam, header.md5s, ref, ref_md5s, report)
            del header  # before the next one is read
    if bed is not None:
        with reading(bed, READING["bed"], report):
            check_targets(bed, ref, ref_contigs, report)
    if annotation is not None:
        with reading(annotation, READING["annotation"], report):
            check_annotation(annotation, report)
    if reference_cnn is not None:
        with reading(reference_cnn, READING["reference_cnn"], report):
            check_reference_cnn(reference_cnn, ref, ref_contigs, options or {}, report)
    return report


def _bam_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    return (name, path) if sep and name else (Path(text).name, text)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Check CNVkit inputs (BAMs, reference, targets, annotation).",
    )
    parser.add_argument("--ref", help="reference FASTA")
    parser.add_argument("--bed", help="targets: BED or interval_list")
    parser.add_argument("--annotation", help="GFF3, GTF, refFlat or BED")
    parser.add_argument(
        "--bam",
        type=_bam_arg,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a sample's BAM (repeat for each sample)",
    )
    parser.add_argument("--reference-cnn", help="a CNVkit reference built earlier, to reuse")
    parser.add_argument("--option", action="append", default=[], metavar="FIELD=ARGS",
                        help="the job's option string of a substep, e.g. coverage_conf=-q 20 "
                             "(compared with a reused reference's record)")
    parser.add_argument("--check-options", metavar="FILE",
                        help="check the --option strings with CNVkit's parsers and write "
                             "what each becomes here")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--indexes", metavar="FILE", help="write the index decisions here")
    parser.add_argument("--indexes-only", action="store_true",
                        help="only decide which indexes are used (with --indexes)")
    parser.add_argument("--max-memory", type=int, metavar="BYTES",
                        help="the most memory (address space) the check may use")
    parser.add_argument("--max-cpu-seconds", type=int, metavar="N",
                        help="the most CPU time the check may use")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="lower the check's scheduling priority by N")
    args = parser.parse_args(argv)
    limit_resources(args.max_memory, args.max_cpu_seconds, args.nice)
    bams: dict[str, str] = {}
    duplicated = []
    for name, path in args.bam:
        if name in bams:
            duplicated.append(name)
        bams[name] = path
    options = dict(pair.split("=", 1) for pair in args.option if "=" in pair)
    report = Report()
    if args.check_options:
        checked = check_options(options, report)
        Path(args.check_options).write_text(json.dumps(checked, indent=2) + "\n")
        options = {field: option["args"] for field, option in checked.items()}
    try:
        if args.indexes_only:
            with reading(args.ref or "", READING["fai"], report):
                decide_indexes(args.ref, bams, report)
        else:
            check_inputs(args.ref, args.bed, bams, args.annotation, args.reference_cnn, options,
                         report)
    except OutOfTime as exc:
        out_of_time(exc, report)
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # the report is written, whatever time is left
    if args.indexes:
        Path(args.indexes).write_text(json.dumps(report.indexes) + "\n")
    for name in duplicated:
        report.error(bams[name], f"sample name {name!r} is given more than once")
    if args.json:
        problems = [asdict(p) for p in report.problems]
        print(json.dumps({"problems": problems, "notes": report.notes,
                          "indexes": report.indexes}, indent=2))
    else:
        for p in report.problems:
            print(f"{p.severity}: {p.file}: {p.message}")
        for note in report.notes:
            print(f"note: {note}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
