"""The check of a sample's VCF, whose SNVs CNVkit's `call -v` and `scatter -v` take allele
fractions from (through pysam, which gives up at the first line it cannot parse).

A VCF (plain, or gzip/bgzip-compressed: told by its first bytes, not its name) is read line by
line, as `input_bounds.py` bounds it: what is found wrong is kept as counts and first examples
(`check_report.Tally`), and what is kept per contig is bounded by `Contigs`. Found:
- not a VCF, or corrupt: no '##fileformat=VCF' first line, a bad or truncated gzip stream (a
  bgzip file without its end-of-file block was cut short), no '#CHROM' line before the first
  record, malformed lines (a blank line, a wrong column count, a POS that is not a positive
  integer);
- a sample column the job names (the sample's, its matched normal's) that the '#CHROM' line does
  not have, or has twice (pysam's readers refuse a repeated name);
- record contigs that the reference FASTA does not have;
- records out of order: a contig's positions going back, or a contig in two separate blocks
  (such a file is often two files run together by mistake, or one never sorted: a caller's
  VCF is sorted, and an unsorted one cannot be indexed);
- no records at all (CNVkit then has no allele fractions), a last line without its end of line
  (a plain file cut short).
Errors: what pysam or CNVkit would fail on mid-job, a bgzip file without its end block (read
without a word, short of its records), records on contigs the reference lacks (the VCF was
called on another reference, or on a larger one: either way not on these BAMs' contigs), and
records out of order; the rest are warnings.

Standard library only (plus ``annotation_to_bed.py`` from this directory for telling a gzip
file): the pipeline runs the checks inside CNVkit containers.
"""

import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from annotation_to_bed import is_gzip
from check_report import File, Report, Tally, chr_hint, examples, readable
from input_bounds import Contigs, TooLarge, text_lines

FIXED = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")  # then FORMAT, samples
# The empty block that ends every complete bgzip file (SAM specification, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


@dataclass
class Variants:
    """What is found in a VCF, line by line."""

    columns: list[str] | None = None  # the sample columns, once the '#CHROM' line is read
    width: int = 0  # columns of the '#CHROM' line (0: records not checked column by column)
    fixed: bool = True  # whether the '#CHROM' line names the fixed columns as it must
    records: int = 0  # that can be read
    headless: int = 0  # the line of a record before any '#CHROM' line
    unended: int = 0  # the last line, if it has no end of line
    bad: Tally = field(default_factory=Tally)  # lines that cannot be parsed
    back: Tally = field(default_factory=Tally)  # positions lower than the one before
    split: Tally = field(default_factory=Tally)  # contigs met again after another one
    contigs: Contigs = field(default_factory=Contigs)  # {contig: records}
    last: tuple[str, int] = ("", 0)  # the contig and position of the record before

    def line(self, text: str, number: int) -> None:
        """Take one line (without its end of line); record what is wrong with it."""
        if text.startswith("##"):
            if self.columns is not None:
                self.bad.add(f"line {number}: a '##' line after the '#CHROM' line")
        elif text.startswith("#"):
            self.header(text, number)
        elif self.columns is None:
            self.headless = self.headless or number
        else:
            self.record(text, number)

    def header(self, text: str, number: int) -> None:
        cols = text.split("\t")
        if self.columns is not None:
            self.bad.add(f"line {number}: a second '#CHROM' line")
        elif tuple(cols[:8]) != FIXED or (len(cols) > 8 and cols[8] != "FORMAT"):
            self.bad.add(f"line {number}: the '#CHROM' line must name the tab-separated columns "
                         f"{' '.join(FIXED)} [FORMAT SAMPLE...], not {text[:80]!r}")
            self.columns, self.fixed = [], False
        else:
            self.columns, self.width = cols[9:], len(cols)

    def record(self, text: str, number: int) -> None:
        if not text.strip():
            self.bad.add(f"line {number}: blank")
            return
        cols = text.split("\t")
        if len(cols) != self.width and self.width:
            self.bad.add(f"line {number}: {len(cols)} columns, the '#CHROM' line has "
                         f"{self.width}: {text[:60]!r}")
            return
        contig, pos = cols[0], cols[1] if len(cols) > 1 else ""
        if not pos.isdigit() or int(pos) < 1:
            self.bad.add(f"line {number}: POS {pos[:20]!r} is not a positive integer")
            return
        last_contig, last_pos = self.last
        if contig == last_contig and int(pos) < last_pos:
            self.back.add(f"line {number}: {contig}:{pos} after {contig}:{last_pos}")
        elif contig != last_contig and contig in self.contigs:
            self.split.add(f"{contig} again at line {number}")
        self.contigs[contig] = self.contigs.get(contig, 0) + 1
        self.last = (contig, int(pos))
        self.records += 1


def scan_vcf(path: Path, found: Variants) -> str | None:
    """Read the VCF into `found`; what makes it unreadable as a VCF (its first line, a corrupt
    or truncated gzip stream, an over-long line), or None."""
    gzipped = is_gzip(path)
    opener = gzip.open if gzipped else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
            ended = True
            for number, line in enumerate(text_lines(f), 1):
                if number == 1 and not line.startswith("##fileformat=VCF"):
                    return f"is not a VCF: its first line is not '##fileformat=VCF...' but " \
                           f"{line[:40]!r}"
                ended = line.endswith("\n")
                found.line(line.rstrip("\r\n"), number)
        if gzipped and _bgzf(path) and not _bgzf_ended(path):
            return f"is truncated: its bgzip end-of-file block is missing after line {number}"
        found.unended = 0 if ended else number
    except TooLarge:
        raise  # for the caller, which says it so
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        where = f"after line {number}" if number else "at its start"
        return f"is corrupt or truncated (a bad gzip stream {where}: {exc})"
    except ValueError as exc:  # from text_lines
        return f"is not a VCF: {exc}"
    return None if number else "is empty"


def _bgzf(path: Path) -> bool:
    """Whether a gzip file is bgzip's (its first member's extra field is a 'BC' block size)."""
    with open(path, "rb") as f:
        head = f.read(14)
    return len(head) == 14 and bool(head[3] & 4) and head[12:14] == b"BC"


def _bgzf_ended(path: Path) -> bool:
    """Whether a bgzip file ends with its empty end-of-file block."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - len(BGZF_EOF), 0))
        return f.read() == BGZF_EOF


def check_vcf(
    file: File, columns: Iterable[str], ref: File | None, ref_contigs: dict[str, int] | None,
    report: Report,
) -> None:
    """Check a VCF for CNVkit: readable, with the sample `columns` the job names (the sample's,
    its matched normal's), on the reference's contigs (`ref_contigs` of `ref`, unless None),
    in order."""
    if not readable(file, report):
        return
    found = Variants()
    try:
        unreadable = scan_vcf(Path(file), found)
    except TooLarge as exc:
        report.error(file, f"VCF {exc}")
        return
    if unreadable:
        report.error(file, unreadable)
    if found.columns is None or found.headless:
        if found.headless or not unreadable:
            where = f" before its first record (line {found.headless})" if found.headless else ""
            report.error(file, f"has no '#CHROM' line{where}: it is not a VCF, or its header "
                         "was cut off")
        return
    if found.bad:
        report.error(file, f"has lines that cannot be read as VCF: {found.bad}")
    if found.fixed:
        _check_columns(file, columns, found.columns, report)
    if unreadable:
        return
    if found.unended:
        report.warning(file, f"its last line ({found.unended}) has no end of line: was the file "
                       "cut short?")
    contigs = found.contigs
    if not contigs:
        if not found.bad:
            report.warning(file, "has no records: CNVkit gets no allele fractions from it")
        return
    report.note(file, f"VCF with {found.records} records on {len(contigs)} contigs; sample "
                f"columns: {examples(found.columns) or 'none'}")
    if found.back:
        report.error(file, f"is not sorted: positions go back ({found.back}); sort it "
                     "(bcftools sort) and check that it is the file you meant to give")
    if found.split:
        report.error(file, f"is not sorted: its records of a contig are in more than one "
                     f"block ({found.split}); check that it is not two VCFs run together, "
                     "then sort it (bcftools sort)")
    if ref_contigs is not None:
        _check_contigs(file, contigs, ref, ref_contigs, report)


def _check_columns(
    file: File, wanted: Iterable[str], columns: list[str] | None, report: Report
) -> None:
    """Each column the job names is one sample column of the '#CHROM' line."""
    if columns is None:
        return
    for name in dict.fromkeys(wanted):
        count = columns.count(name)
        if count == 1:
            continue
        if count > 1:
            report.error(file, f"has the sample column {name!r} {count} times; CNVkit needs it "
                         "once")
        elif columns:
            report.error(file, f"has no sample column {name!r} (its sample columns: "
                         f"{examples(columns)}): name the sample's column as the VCF does "
                         "(vcf_sample)")
        else:
            report.error(file, f"has no sample columns, so none named {name!r}: CNVkit takes "
                         "the allele counts from the sample's column")


def _check_contigs(
    file: File, contigs: dict[str, int], ref: File | None, ref_contigs: dict[str, int],
    report: Report,
) -> None:
    """The records' contigs are the reference's."""
    missing = [c for c in contigs if c not in ref_contigs]
    if not missing:
        return
    n = sum(contigs[c] for c in missing)
    if len(missing) == len(contigs):
        report.error(file, f"no record's contig is in the reference {ref} (VCF: "
                     f"{examples(contigs)}; reference: {examples(ref_contigs)})"
                     f"{chr_hint(contigs, ref_contigs)}: was it called on another reference?")
    else:
        report.error(file, f"{len(missing)} of {len(contigs)} contigs of its records are not "
                     f"in the reference {ref} (e.g. {examples(missing)}; {n} records): give "
                     "the VCF called on this reference, or keep its contigs (bcftools view "
                     "-t with the reference's contigs)")
