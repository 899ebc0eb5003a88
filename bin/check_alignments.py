"""The checks of a BAM or CRAM: a coordinate-sorted, duplicate-marked alignment on the
reference's contigs, and for a CRAM, against the reference's very sequences.

Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

from collections.abc import Callable
from pathlib import Path

from alignment_header import DEDUP_TOOLS, Header, read_header
from check_report import File, Report, Tally, chr_hint, examples, readable


def check_bam(file: File, report: Report) -> Header | None:
    """Check one BAM or CRAM file; return its header if it could be read."""
    path = Path(file)
    if not readable(file, report):
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
            f"reference: {examples(ref_contigs)}){chr_hint(contigs, ref_contigs)}",
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
