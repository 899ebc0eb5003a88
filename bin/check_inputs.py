#!/usr/bin/env python3
"""Check a CNVkit job's inputs before CNVkit sees them, and report every problem at once.

Usage: check_inputs.py [--ref REF.fa] [--method hybrid|amplicon|wgs] [--autobin true|false]
                       [--bed TARGETS.bed] [--access-bed ACCESS.bed] [--exclude FILE.bed ...]
                       [--annotation FILE]
                       [--bam NAME=PATH ...] [--vcf ID=PATH [--vcf-columns ID=NAME[,NAME]] ...]
                       [--samples ROWS.json [--reference-mode MODE [--reference-only]]]
                       [--reference-cnn REFERENCE.cnn
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
what each becomes: `{"FIELD": {"args": "re-quoted, without -p", "processes": N|null}}`, the
entries of target_conf and antitarget_conf with the bin-size plan of `--method` and
`--autobin` (`cnvkit_options.stage_options`: "size", "size_from", "split"). It needs CNVkit
(the pipeline runs it in CNVkit's container or conda environment).

`--method` is the job's assay (default hybrid): the targets (`--bed`) are required unless it is
wgs, when the check is of a job's files (not with `--indexes-only` or `--check-options`), and
duplicate marks are not required of amplicon BAMs. `--access-bed` (a precomputed access BED)
and each `--exclude` (an exclusion BED of `cnvkit.py access -x`) are checked as the targets are:
plain-text BED lines CNVkit reads, contigs against the FASTA's.

Every check streams (`input_bounds.py`): of what is wrong it keeps counts and the first few
examples, and a file may bring only so many contig names, so what a check costs does not grow
with what a small crafted file unfolds into. `--max-memory` and `--max-cpu-seconds`
make that a limit the process sets on itself before it reads any file (its address space, its
CPU time), and `--nice` lowers its priority; the caller
(`cnvkit_nf/launch/local_files.py`) gives them.
A check that needs more memory, or more CPU time, than allowed ends as a problem of the file it
was reading, not as a traceback (for the CPU: the files after it are not checked). The limits
suit the file checks; `--check-options` imports CNVkit, which needs more.

Exit status 0 if the inputs are usable (warnings allowed), 1 if any error was found. Problems
are printed one per line (``error: FILE: reason``), or with ``--json`` as
``{"problems": [{"file", "message", "severity"}], "notes": [...]}``.

This script is the command: its limits, the order of the checks and the report. The checks
are the modules beside it, which it imports as plain modules (this directory is on the path of
a script run from it, and `cnvkit_nf.pipeline_files.load_bin` puts it there): the BAMs and
CRAMs (`check_alignments.py`, their headers read by `alignment_header.py`), the FASTA
(`reference_fasta.py`), the indexes (`input_indexes.py`), the targets and annotation
(`check_regions.py`), the samples' VCFs (`check_variants.py`), a reused reference
(`check_reused_reference.py`); what they find is collected by `check_report.py`. Standard
library only (and CNVkit for `--check-options`): the pipeline also runs it inside CNVkit
containers.
"""

import argparse
import contextlib
import json
import os
import resource
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from check_alignments import check_bam, check_cram_reference, compare_contigs
from check_regions import check_annotation, check_targets
from check_report import File, Report
from check_reused_reference import check_reference_cnn
from check_variants import check_vcf
from input_indexes import decide_indexes
from reference_fasta import check_reference, scan_fasta
from sample_rows import cross_row_problems, role_problems

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


def check_options(options: dict[str, str], report: Report, method: str = "hybrid",
                  autobin: bool | None = None) -> dict[str, dict]:
    """The option strings checked with CNVkit's parsers (problems go to the report): what
    each accepted one becomes, `{"args": re-quoted string without -p, "processes": N|None}`,
    with target's and antitarget's bin-size plan for `method` and `autobin` (None: not
    given)."""
    from cnvkit_options import check_all, stage_options  # imports CNVkit where it is installed

    checked, found = check_all(options)
    for problem in found:
        add = report.error if problem.severity == "error" else report.warning
        add(problem.field, problem.message)
    return stage_options(checked, method, autobin)


# --- command line ------------------------------------------------------------------------------

# What the check of each input does, for a problem saying it needs more memory or time.
READING = {
    "ref": "reading its contigs (all of the FASTA, unless an up-to-date .fai lies beside it: "
           "`samtools faidx` makes one)",
    "md5": "reading the MD5 of each of its sequences, for a CRAM's M5 tags",
    "fai": "reading its .fai",
    "bam": "reading its header",
    "bed": "reading its intervals",
    "access_bed": "reading its intervals (accessible regions)",
    "exclude": "reading its intervals (regions excluded from access)",
    "vcf": "reading its records",
    "annotation": "telling its format",
    "reference_cnn": "reading its bins",
}


def check_inputs(
    ref: File | None, bed: File | None, bams: dict[str, File], annotation: File | None = None,
    reference_cnn: File | None = None, options: dict[str, str] | None = None,
    report: Report | None = None, vcfs: dict[str, File] | None = None,
    vcf_columns: dict[str, list[str]] | None = None, method: str = "hybrid",
    access_bed: File | None = None, exclude: list[File] | None = None,
) -> Report:
    """Run every check on the files given (a caller that already found a file unusable leaves
    it out) and collect the results (into `report` if given); `options` are the job's option
    strings by field; `vcfs` the samples' VCFs by sample, `vcf_columns` the columns each must
    have (the sample's, its matched normal's); `method` the job's assay; `access_bed` and
    `exclude` the accessible regions given and the exclusion BEDs, checked as the targets."""
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
            header = check_bam(bam, report, method)
            if header and ref_contigs:
                agree = compare_contigs(bam, header.contigs, ref, ref_contigs, report)
                if agree and str(bam).endswith(".cram"):
                    check_cram_reference(bam, header.md5s, ref, ref_md5s, report)
            del header  # before the next one is read
    wanted: dict[File, list[str]] = {}  # a VCF of several samples is read once
    for sample, vcf in (vcfs or {}).items():
        wanted.setdefault(vcf, []).extend((vcf_columns or {}).get(sample, []))
    for vcf, columns in wanted.items():
        with reading(vcf, READING["vcf"], report):
            check_vcf(vcf, columns, ref, ref_contigs, report)
    if bed is not None:
        with reading(bed, READING["bed"], report):
            check_targets(bed, ref, ref_contigs, report)
    for name, regions in [("access_bed", access_bed)] + [("exclude", f) for f in exclude or []]:
        if regions is not None:
            with reading(regions, READING[name], report):
                check_targets(regions, ref, ref_contigs, report)
    if annotation is not None:
        with reading(annotation, READING["annotation"], report):
            check_annotation(annotation, report)
    if reference_cnn is not None:
        with reading(reference_cnn, READING["reference_cnn"], report):
            check_reference_cnn(reference_cnn, ref, ref_contigs, options or {}, report, method)
    return report


def check_rows(path: str, mode: str | None, reference_only: bool, reference_cnn: bool,
               report: Report) -> None:
    """The rules across the request's sample rows (`sample_rows.py`), and with `mode` the
    roles the job's kind allows; a row is named by its BAM's file name."""
    rows = json.loads(Path(path).read_text())
    labels = [f"the row of {Path(str(row.get('bam'))).name}" for row in rows]
    found = cross_row_problems(rows, labels)
    if mode is not None:
        found += role_problems(rows, mode, reference_only, reference_cnn)
    for index, key, message in found:
        report.error(f"{labels[index]}, {key}" if index is not None else "samples", message)


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
    parser.add_argument("--method", choices=("hybrid", "amplicon", "wgs"),
                        help="the job's assay (default hybrid): --bed is optional only with "
                             "wgs; amplicon BAMs need no duplicate marks")
    parser.add_argument("--autobin", choices=("true", "false"),
                        help="with --check-options: the request's autobin (default: true for "
                             "wgs, false otherwise)")
    parser.add_argument("--access-bed", metavar="FILE",
                        help="accessible regions given instead of running cnvkit.py access")
    parser.add_argument("--exclude", action="append", default=[], metavar="FILE",
                        help="a BED of regions excluded from access (repeat for each)")
    parser.add_argument("--annotation", help="GFF3, GTF, refFlat or BED")
    parser.add_argument(
        "--bam",
        type=_bam_arg,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a sample's BAM (repeat for each sample)",
    )
    parser.add_argument("--vcf", type=_bam_arg, action="append", default=[], metavar="ID=PATH",
                        help="a sample's VCF of SNVs (repeat for each sample that has one)")
    parser.add_argument("--vcf-columns", action="append", default=[], metavar="ID=NAME[,NAME]",
                        help="the columns sample ID's VCF must have: the sample's, then its "
                             "matched normal's")
    parser.add_argument("--samples", metavar="FILE",
                        help="the request's sample rows (a JSON list, ids filled in): check "
                             "the rules across them (sample_rows.py)")
    parser.add_argument("--reference-mode", choices=("pooled", "leave-one-out"),
                        help="with --samples, also check the roles the job's kind allows "
                             "(with --reference-only and --reference-cnn)")
    parser.add_argument("--reference-only", action="store_true",
                        help="with --reference-mode: the job builds a reference only")
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
    vcf_columns = {sample: [n for n in names.split(",") if n] for sample, _, names in
                   (pair.partition("=") for pair in args.vcf_columns)}
    report = Report()
    method = args.method or "hybrid"
    autobin = None if args.autobin is None else args.autobin == "true"
    if args.check_options:
        checked = check_options(options, report, method, autobin)
        Path(args.check_options).write_text(json.dumps(checked, indent=2) + "\n")
        options = {field: option["args"] for field, option in checked.items()}
    try:
        if args.indexes_only:
            with reading(args.ref or "", READING["fai"], report):
                decide_indexes(args.ref, bams, report)
        else:
            check_inputs(args.ref, args.bed, bams, args.annotation, args.reference_cnn, options,
                         report, dict(args.vcf), vcf_columns, method, args.access_bed,
                         args.exclude)
            if args.method not in (None, "wgs") and args.bed is None \
                    and not args.check_options:
                report.error("", f"no targets (--bed): a {method} job bins the targets of its "
                                 "BED; only a wgs job may leave it out")
    except OutOfTime as exc:
        out_of_time(exc, report)
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # the report is written, whatever time is left
    if args.indexes:
        Path(args.indexes).write_text(json.dumps(report.indexes) + "\n")
    for name in duplicated:
        report.error(bams[name], f"sample name {name!r} is given more than once")
    if args.samples:
        check_rows(args.samples, args.reference_mode, args.reference_only,
                   args.reference_cnn is not None, report)
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
