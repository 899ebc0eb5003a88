"""What the input checks use of a BAM's or CRAM's header (sort order, duplicate marking, contigs
and their MD5s), read in bounded memory through one descriptor of the file it is given.

The SAM header text is streamed a chunk at a time, keeping only the lines asked for; a header
may claim at most MAX_HEADER_TEXT bytes of text, and its contigs are bounded as every file's
are (`input_bounds`). pysam is not used: htslib reads a header whole, whatever size it claims
(a BAM of 0.8 MB claiming 500 MB of zeros costs it 1.4 GB), and waits on a FIFO.
Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

import bz2
import gzip
import io
import lzma
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from input_bounds import CHUNK, MAX_CONTIGS, MAX_LINE, Contigs

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
            for line in _sam_lines(text, length, (b"@HD", b"@PG", b"@SQ")):
                header.take(line)
        f.seek(max(0, f.seek(0, os.SEEK_END) - len(CRAM_EOF[major])))
        tail = f.read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"is truncated or corrupt: cannot read its header ({exc})") from None
    if tail not in (CRAM_EOF[major], _CRAM_EOF_HTSLIB.get(major)):
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

