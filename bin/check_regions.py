"""The checks of the region files: the targets (a BED or Picard interval_list, plain text, each
line one CNVkit reads) and the gene annotation (a format `annotation_to_bed.py` converts).

Standard library only (plus ``annotation_to_bed.py`` from this directory: the annotation format
sniffing): the pipeline runs the checks inside CNVkit containers.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from annotation_to_bed import FORMATS, is_gzip, sniff_format
from check_report import File, Report, Tally, chr_hint, examples, readable
from input_bounds import Contigs, TooLarge, text_lines

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
    if not readable(file, report):
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
            f"reference: {examples(ref_contigs)}){chr_hint(contigs, ref_contigs)}",
        )
    elif missing:
        n = sum(contigs[c] for c in missing)
        report.warning(
            file,
            f"{len(missing)} of {len(contigs)} {kind} contigs are not in the reference {ref} "
            f"(e.g. {examples(missing)}); their {n} intervals will get no coverage",
        )


def check_annotation(file: File, report: Report) -> None:
    """The annotation must be GFF3, GTF, refFlat/genePred or BED (plain or gzipped)."""
    path = Path(file)
    if not readable(file, report):
        return
    fmt = sniff_format(path)
    if fmt is None:
        expected = ", ".join(FORMATS.values())
        report.error(file, f"is not a recognised annotation format (expected {expected})")
    else:
        gz = " (gzip-compressed)" if is_gzip(path) else ""
        report.note(file, f"annotation format {FORMATS[fmt]}{gz}")
