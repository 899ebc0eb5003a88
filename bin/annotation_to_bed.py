#!/usr/bin/env python3
"""Convert a gene annotation into a BED4 of gene symbols for ``cnvkit.py target --annotate``.

Usage: annotation_to_bed.py IN OUT.bed

IN may be GFF3 or GTF (plain or gzipped), UCSC refFlat / genePred, or BED. GFF3/GTF exons
(genes if there are no exons) are named by ``gene_name``, else ``Name``, else ``gene``, else
``gene_id``; GFF3 features without ``gene_name`` take the name of their ``Parent`` gene, so
Ensembl/RefSeq GFF3 also yield symbols rather than exon or transcript IDs. refFlat gives one
row per exon named by the gene symbol (genePred: by its name column). BED is passed through
with its name column. The output is deduplicated and sorted by contig and start.

Standard library only: the pipeline runs it inside CNVkit containers. ``check_inputs.py``
imports :func:`sniff_format` and :func:`is_gzip` from here.
"""

import argparse
import gzip
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO
from urllib.parse import unquote

FORMATS = {
    "gff3": "GFF3",
    "gtf": "GTF",
    "refflat": "UCSC refFlat",
    "genepred": "UCSC genePred",
    "bed": "BED",
}
NAME_KEYS = ("gene_name", "Name", "gene", "gene_id")
SNIFF_LINES = 20
SNIFF_BYTES = 1 << 20  # the format is told from at most this much of the start of a file
_GFF_SKIP = {"CDS", "start_codon", "stop_codon", "five_prime_UTR", "three_prime_UTR", "UTR"}
_GTF_ATTR = re.compile(r'(\S+)\s+"([^"]*)"')  # key "value";
_GFF3_ATTR = re.compile(r'\s*[^\s=;"]+=')  # key=value;
_GFF3_PAIR = re.compile(r"([^=;\s][^=;]*)=([^;]*)")

Row = tuple[str, int, int, str]
Label = tuple[str, str, str]  # gene_name, Parent ID, fallback name (Name, gene or gene_id)


def is_gzip(path: str | Path) -> bool:
    """True if the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or gzip-compressed text file for reading."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def data_lines(lines: Iterable[str]) -> Iterator[str]:
    """Lines without trailing newline, skipping blanks, comments and BED track/browser lines."""
    for line in lines:
        line = line.rstrip("\r\n")
        if line.strip() and not line.startswith(("#", "track", "browser")):
            yield line


def _line_format(line: str) -> str | None:
    """Format that a single data line is consistent with, if any."""
    cols = line.split("\t")
    if len(cols) == 9 and cols[3].isdigit() and cols[4].isdigit() and cols[6] in "+-.?":
        if _GFF3_ATTR.match(cols[8]):
            return "gff3"
        if _GTF_ATTR.match(cols[8].strip()):
            return "gtf"
    if len(cols) in (10, 11):
        c = cols[-10:]  # genePred columns, after refFlat's leading gene symbol
        if c[2] in ("+", "-") and all(map(str.isdigit, c[3:8])) and "," in c[8] + c[9]:
            return "refflat" if len(cols) == 11 else "genepred"
    if len(cols) >= 3 and cols[1].isdigit() and cols[2].isdigit():
        return "bed"
    return None


def sniff_format(path: str | Path) -> str | None:
    """Detect the annotation format: a key of :data:`FORMATS`, or None if unrecognised.

    A ``##gff-version 3`` header means GFF3; otherwise the first data lines must all agree.
    """
    try:
        with open_text(path) as f:
            head = f.read(SNIFF_BYTES).splitlines(keepends=True)[:1000]
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    if any(line.startswith("##gff-version 3") for line in head):
        return "gff3"
    found = {_line_format(line) for line in islice(data_lines(head), SNIFF_LINES)}
    return found.pop() if len(found) == 1 else None


def _gff_attributes(text: str, gtf: bool) -> dict[str, str]:
    if gtf:
        return dict(_GTF_ATTR.findall(text))
    pairs = _GFF3_PAIR.findall(text)
    return {k: unquote(v) for k, v in pairs} if "%" in text else dict(pairs)


def read_gff(path: str | Path, gtf: bool = False) -> list[Row]:
    """Exons (or genes, if there are no exons) of a GFF3/GTF file, named by gene symbol."""
    rows: dict[str, set[Row]] = {"exon": set(), "gene": set()}
    # features without gene_name: (contig, start, end), (gene_name, parent ID, fallback name)
    pending: dict[str, list[tuple[tuple[str, int, int], Label]]] = {"exon": [], "gene": []}
    parents: dict[str, Label] = {}
    with open_text(path) as f:
        for line in data_lines(f):
            cols = line.split("\t")
            if len(cols) != 9 or cols[2] in _GFF_SKIP:
                continue
            attrs = _gff_attributes(cols[8], gtf)
            fallback = next((attrs[k] for k in NAME_KEYS[1:] if attrs.get(k)), "-")
            label = (attrs.get("gene_name", ""), attrs.get("Parent", "").split(",")[0], fallback)
            if cols[2] != "exon" and "ID" in attrs:
                parents[attrs["ID"]] = label
            if cols[2] in rows:
                where = (sys.intern(cols[0]), int(cols[3]) - 1, int(cols[4]))
                if label[0]:
                    rows[cols[2]].add((*where, sys.intern(label[0])))
                else:
                    pending[cols[2]].append((where, label))

    def resolve(label: Label, depth: int = 0) -> str:
        name, parent, fallback = label
        if name or parent not in parents or depth > 10:
            return name or fallback
        return resolve(parents[parent], depth + 1)

    kind = "exon" if rows["exon"] or pending["exon"] else "gene"
    rows[kind].update((*where, resolve(label)) for where, label in pending[kind])
    return list(rows[kind])


def read_genepred(path: str | Path, refflat: bool) -> list[Row]:
    """One row per exon of a UCSC refFlat (named by gene symbol) or genePred (by name)."""
    rows = []
    with open_text(path) as f:
        for line in data_lines(f):
            cols = line.split("\t")
            name, cols = cols[0], cols[1:] if refflat else cols
            starts, ends = (map(int, filter(None, cols[i].split(","))) for i in (8, 9))
            rows += [(cols[1], s, e, name) for s, e in zip(starts, ends, strict=True)]
    return rows


def read_bed(path: str | Path) -> list[Row]:
    """BED rows as BED4; a missing name becomes ``-``."""
    with open_text(path) as f:
        rows = [line.split("\t") for line in data_lines(f)]
    return [(r[0], int(r[1]), int(r[2]), r[3] if len(r) > 3 else "-") for r in rows]


def _natural(text: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def convert(src: str | Path, dest: str | Path) -> int:
    """Write ``src`` as a sorted, deduplicated BED4 to ``dest``; return the number of rows."""
    fmt = sniff_format(src)
    if fmt is None:
        expected = ", ".join(FORMATS.values())
        raise ValueError(f"{src}: not a recognised annotation format (expected {expected})")
    try:
        if fmt in ("gff3", "gtf"):
            rows = read_gff(src, gtf=fmt == "gtf")
        elif fmt in ("refflat", "genepred"):
            rows = read_genepred(src, refflat=fmt == "refflat")
        else:
            rows = read_bed(src)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{src}: cannot be read as {FORMATS[fmt]}: {exc}") from None
    rows = sorted(set(rows), key=lambda r: (_natural(r[0]), r[1], r[2], r[3]))
    with open(dest, "w") as out:
        out.writelines(f"{c}\t{s}\t{e}\t{n}\n" for c, s, e, n in rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``annotation_to_bed.py IN OUT.bed``."""
    parser = argparse.ArgumentParser(
        description="Convert GFF3/GTF/refFlat/BED gene annotation to a BED4 of gene symbols."
    )
    parser.add_argument("annotation", help="GFF3, GTF (plain or .gz), UCSC refFlat or BED")
    parser.add_argument("out", help="BED4 to write")
    args = parser.parse_args(argv)
    try:
        n = convert(args.annotation, args.out)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(f"wrote {n} regions to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
