"""Which indexes of a job's inputs are used as they are and which are built, decided once for
every caller: the pipeline's check, the launcher (`cnvkit_nf/launch/local_files.py`) and where
a request's index files are looked for (`cnvkit_nf/contract/paths.py`, by INDEX_SUFFIXES).

Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

import os
from pathlib import Path

from check_report import File, Report
from reference_fasta import usable_fai

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
