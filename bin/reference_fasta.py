"""The reference FASTA and its .fai: the contigs and their lengths (from a .fai that is used as
it is, else from the whole FASTA, read a chunk at a time), the MD5 of each sequence, and the
check of the FASTA.

Standard library only (plus ``annotation_to_bed.py`` from this directory for telling a gzip
file): the pipeline runs the checks inside CNVkit containers.
"""

import gzip
import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import IO

from annotation_to_bed import is_gzip
from check_report import File, Report, examples, readable
from input_bounds import CHUNK, Contigs, TooLarge, admit_names, text_lines

MAX_FASTA_HEADER = 1 << 16  # a FASTA '>' line


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
    if not readable(file, report):
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
