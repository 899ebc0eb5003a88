"""The checks of a BAM or CRAM: a coordinate-sorted alignment on the reference's contigs,
duplicate-marked as its assay needs, and for a CRAM, against the reference's very sequences.

Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

import shlex
from collections.abc import Callable
from pathlib import Path

from alignment_header import DEDUP_TOOLS, Header, duplicate_flags, read_header
from check_report import File, Report, Tally, chr_hint, examples, readable


def markdup_hint(file: File) -> str:
    """Commands that mark the duplicates of `file` with samtools (they run as written, in a
    folder where the intermediate files may go), and the alternative."""
    chain = (f"samtools sort -n -o n.bam {shlex.quote(str(file))} && samtools fixmate -m n.bam "
             "f.bam && samtools sort -o s.bam f.bam && samtools markdup s.bam out.bam && "
             "samtools index out.bam")
    return f"mark them, e.g. `{chain}` and give out.bam, or with Picard/GATK MarkDuplicates"


def check_bam(file: File, report: Report, method: str = "hybrid") -> Header | None:
    """Check one BAM or CRAM file of a job of `method` ("hybrid", "amplicon", "wgs"); return
    its header if it could be read.

    Hybrid capture and WGS need their duplicates marked (or removed): a @PG line of a marker
    says so, else a duplicate flag among the first records read. Amplicon reads of one amplicon
    all start and end alike, so they need no marking, and CNVkit would not count marked ones."""
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
    if method == "amplicon":
        if header.deduplicated:
            report.warning(file, "an amplicon panel's BAM with duplicates marked (a @PG line "
                           "says so): CNVkit counts no read flagged as a duplicate, and the reads "
                           "of one amplicon all look alike, so most would not be counted; give "
                           "the BAM from before duplicate marking")
        else:
            report.note(file, "amplicon reads: no duplicate marking needed")
    elif not header.deduplicated:
        _duplicates_by_flags(file, path, report)
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


def _duplicates_by_flags(file: File, path: Path, report: Report) -> None:
    """No @PG line says duplicates were marked: pass when a record read has the flag."""
    flags = duplicate_flags(path)
    if flags.found:
        report.note(file, f"duplicates marked (record {flags.records} has the duplicate flag; "
                    "no @PG line of a duplicate marker)")
        return
    if flags.records is None:
        seen = f"its records could not be read ({flags.stopped})"
    else:
        first = "" if flags.whole else "first "
        seen = f"none of its {first}{flags.records} records has the duplicate flag 0x400"
        if flags.stopped:
            seen += f" (read no further: {flags.stopped})"
    report.error(file, f"duplicates are not marked or removed: no @PG header line of a "
                 f"duplicate marker ({DEDUP_TOOLS}), and {seen}; {markdup_hint(file)}")
