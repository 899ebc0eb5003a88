"""The check of a CNVkit reference built earlier, to reuse: its bins on the FASTA's contigs and,
from its record (`reference_record.py`), built on this very FASTA with options this job does
not contradict.

Standard library only (plus ``reference_record.py`` from this directory): the pipeline runs the
checks inside CNVkit containers.
"""

from pathlib import Path

from check_report import File, Report, Tally, chr_hint, examples, readable
from input_bounds import Contigs, TooLarge, text_lines
from reference_record import cnvkit_version, contradictions, method_contradiction, record_path
from reference_record import read as read_record

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
                        options: dict[str, str], report: Report,
                        method: str | None = None) -> None:
    """A reference to reuse: a CNVkit reference on the FASTA's contigs; when its record is
    beside it, built on this very FASTA, for this job's `method` (None: not compared), with
    options this job does not contradict; bin sizes the job gives that differ from the
    record's are a warning."""
    if not readable(file, report):
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
                         + (f"not in it: {examples(unknown)}{chr_hint(unknown, ref_contigs)}"
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
        for reason in contradictions(record, options, Path(ref), ref_contigs, method):
            report.error(file, f"cannot be reused: {reason}")
    else:  # the FASTA could not be read: the method is still compared
        for reason in method_contradiction(record, method):
            report.error(file, f"cannot be reused: {reason}")
    installed = cnvkit_version()
    if installed and record.get("cnvkit") != installed:
        report.warning(file, f"was built with CNVkit {record.get('cnvkit')}; this is CNVkit "
                       f"{installed}")
    controls = record.get("controls") or []
    report.note(file, f"reference built from {len(controls)} control(s): "
                f"{', '.join(map(str, controls)) or 'none (flat)'}")
