#!/usr/bin/env python3
"""The bin sizes of a job's regions: reference/bin_sizes.json, and the words of the target and
antitarget lines that carry them.

Usage (two lines of the regions stage, run by cnvkit_stage.py; see modules/cnvkit/prepare):
  bin_sizes.py --method hybrid|amplicon|wgs [--autobin] [--split]
               --target-from FROM [--target-size N] --antitarget-from FROM [--antitarget-size N]
               [--bam FILE ...] [--targets BED] [--access BED] [--fasta FASTA]
               -o reference/bin_sizes.json --words WORDS.json
      after access, before target: the plan (the checked options' `size`, `size_from` and
      `split`, bin/cnvkit_options.py stage_options); where a source is "autobin", the size is
      CNVkit's autobin (`cnvlib.autobin.midsize_file` + `do_autobin`, as `cnvkit.py batch`
      calls them): of the median-size BAM, wgs with 50,000 bp per bin over the access regions,
      hybrid over the targets and access (100,000 bp per bin), amplicon over the targets.
      WORDS.json gets the words cnvkit_stage.py puts in place of `{target_size}` (e.g.
      `--split --avg-size 267`) and `{antitarget_size}` (e.g. `-a 150000`; none when the
      size is antitarget_conf's own or CNVkit's default).
  bin_sizes.py --check reference/bin_sizes.json --targets reference/targets.bed
               --antitargets reference/antitargets.bed [--access reference/access.bed]
      after antitarget: adds the bin counts and the warnings of sizes that cannot fit (too
      large for the gaps between targets, or for the accessible regions of a wgs job).

bin_sizes.json: {"method", "autobin", "target": {"avg_size", "from", "depth", "bam"},
"antitarget": {"avg_size", "from", "depth", "bam"} or {"from": "none"}, "bins": {"target",
"antitarget"}, "warnings": [...]}; avg_size null is CNVkit's default (no size passed); depth
and bam only when autobin computed the size. CNVkit (cnvlib, skgenome) is imported only for
autobin and --check: it runs in CNVkit's containers.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

WGS_BP_PER_BIN = 50000.0  # batch's bp_per_bin for WGS
TARGET_FROM = ("target_conf", "autobin", "wgs default", "cnvkit default")
ANTITARGET_FROM = ("antitarget_conf", "autobin", "cnvkit default", "none")


def autobin(args: argparse.Namespace) -> dict:
    """CNVkit's autobin of the median-size BAM: {"bam", "target": (depth, size, raw),
    "antitarget": (depth, size, raw)}, raw being bp_per_bin / depth before the clamps."""
    from cnvlib import autobin as cnvkit_autobin  # noqa: PLC0415 - slow; already loaded in a stage
    from skgenome import tabio  # noqa: PLC0415

    bam = cnvkit_autobin.midsize_file(args.bam)
    access = tabio.read_auto(args.access) if args.access else None
    if args.method == "wgs":
        targets, bp_per_bin = None, WGS_BP_PER_BIN
    else:
        targets, bp_per_bin = tabio.read_auto(args.targets), 100000.0
        access = access if args.method == "hybrid" else None
    (tgt_depth, tgt_size), (anti_depth, anti_size) = cnvkit_autobin.do_autobin(
        bam, args.method, targets, access, bp_per_bin=bp_per_bin, fasta=args.fasta)

    def raw(depth):
        try:
            return round(bp_per_bin / depth) if depth and depth > 0 else None
        except (ValueError, OverflowError):  # NaN or inf
            return None

    return {"bam": Path(bam).name, "target": (tgt_depth, tgt_size, raw(tgt_depth)),
            "antitarget": (anti_depth, anti_size, raw(anti_depth))}


def autobin_limits() -> dict[str, tuple[int, int]]:
    """do_autobin's clamps of each kind of bin, its own defaults (which batch uses)."""
    import inspect  # noqa: PLC0415

    from cnvlib import autobin as cnvkit_autobin  # noqa: PLC0415 - slow; already loaded in a stage

    given = inspect.signature(cnvkit_autobin.do_autobin).parameters
    return {kind: (given[f"{kind}_min_size"].default, given[f"{kind}_max_size"].default)
            for kind in ("target", "antitarget")}


def cnvkit_antitarget_size() -> int:
    """`cnvkit.py antitarget`'s own -a/--avg-size default."""
    from cnvlib import commands  # noqa: PLC0415 - slow; already loaded in a stage

    return commands.P_anti.get_default("avg_size")


def clamp_warning(kind: str, depth: float, size: int | None, raw: int | None,
                  limits: tuple[int, int]) -> list[str]:
    """A warning when autobin clamped its size to its minimum or maximum."""
    if size is None or raw is None or raw == size:
        return []
    end = "minimum" if size == limits[0] else "maximum"
    return [f"autobin's {kind} bin size for a depth of {depth:.2f} would be {raw} bp: "
            f"clamped to its {end}, {size} bp"]


def plan(args: argparse.Namespace) -> tuple[dict, dict]:
    """bin_sizes.json without bins, and the words of the target and antitarget lines."""
    computed = autobin(args) if "autobin" in (args.target_from, args.antitarget_from) else None
    warnings = []

    def entry(kind: str, source: str, given: int | None, limits: tuple[int, int]) -> dict:
        if source == "autobin":
            depth, size, raw = computed[kind]
            if size is None:
                warnings.append(f"autobin could not estimate the {kind} read depth of "
                                f"{computed['bam']}: CNVkit's default {kind} bin size is used")
            warnings.extend(clamp_warning(kind, depth, size, raw, limits))
            depth = None if depth is None or depth != depth else round(float(depth), 4)
            return {"avg_size": size, "from": source, "depth": depth, "bam": computed["bam"]}
        return {"avg_size": given if source != "cnvkit default" else None, "from": source}

    limits = autobin_limits()
    target = entry("target", args.target_from, args.target_size, limits["target"])
    if args.antitarget_from == "none":
        antitarget = {"from": "none"}
    else:
        antitarget = entry("antitarget", args.antitarget_from, args.antitarget_size,
                           limits["antitarget"])
    added = target["from"] in ("autobin", "wgs default") and target["avg_size"] is not None
    words = {
        "target_size": (["--split"] if args.split else [])
        + (["--avg-size", str(target["avg_size"])] if added else []),
        "antitarget_size": ["-a", str(antitarget["avg_size"])]
        if antitarget["from"] == "autobin" and antitarget["avg_size"] is not None else [],
    }
    record = {"method": args.method, "autobin": args.autobin, "target": target,
              "antitarget": antitarget, "bins": None, "warnings": warnings}
    return record, words


def bed_lengths(path: str | None) -> list[int]:
    """The lengths of a BED's regions (header, track and comment lines skipped)."""
    if not path:
        return []
    lengths = []
    for line in Path(path).read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
            lengths.append(int(fields[2]) - int(fields[1]))
    return lengths


def off_target_gaps(targets: str, access: str) -> list[int]:
    """The lengths of the accessible gaps between targets, as `cnvkit.py antitarget` sees them
    (access shrunk and targets grown by twice CNVkit's insert size)."""
    from cnvlib.params import INSERT_SIZE  # noqa: PLC0415
    from skgenome import tabio  # noqa: PLC0415

    pad = 2 * INSERT_SIZE
    gaps = tabio.read_auto(access).resize_ranges(-pad).subtract(
        tabio.read_auto(targets).resize_ranges(pad))
    return [int(n) for n in (gaps.end - gaps.start) if n > 0]


def fit_warnings(record: dict, targets: str, access: str | None, bins: dict) -> list[str]:
    """Sentences on sizes that cannot fit the regions they divide."""
    warnings = []
    anti = record["antitarget"]
    if anti["from"] != "none" and access:
        size = anti["avg_size"] or cnvkit_antitarget_size()
        gaps = off_target_gaps(targets, access)
        median = statistics.median(gaps) if gaps else 0
        source = {"antitarget_conf": "given in antitarget_conf", "autobin": "from autobin",
                  "cnvkit default": "CNVkit's default"}[anti["from"]]
        if bins["antitarget"] == 0:
            warnings.append(f"no antitarget bins were made: the antitarget bin size {size} bp "
                            f"({source}) is larger than the gaps between targets (median "
                            f"{median:.0f} bp of accessible sequence); give antitarget_conf a "
                            "smaller -a/--avg-size (and -m/--min-size)")
        elif median < size:
            warnings.append(f"few antitarget bins ({bins['antitarget']}): most gaps between "
                            f"targets (median {median:.0f} bp of accessible sequence) are "
                            f"smaller than the antitarget bin size {size} bp ({source}); a "
                            "smaller antitarget_conf -a/--avg-size makes more")
    target = record["target"]
    if record["method"] == "wgs" and target["avg_size"]:
        regions = bed_lengths(access) if access else []
        median = statistics.median(regions) if regions else 0
        if regions and median < target["avg_size"]:
            warnings.append(f"most accessible regions (median {median:.0f} bp) are smaller than "
                            f"the target bin size {target['avg_size']} bp: the bins are those "
                            "regions, not bins of that size")
    return warnings


def check(args: argparse.Namespace) -> None:
    """Add the bin counts and the fit warnings to bin_sizes.json."""
    path = Path(args.check)
    record = json.loads(path.read_text())
    bins = {"target": len(bed_lengths(args.targets)),
            "antitarget": len(bed_lengths(args.antitargets))}
    record["bins"] = bins
    record["warnings"] = record.get("warnings", []) + fit_warnings(record, args.targets,
                                                                   args.access, bins)
    path.write_text(json.dumps(record, indent=2) + "\n")


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin_sizes.py", description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=("hybrid", "amplicon", "wgs"), default="hybrid")
    parser.add_argument("--autobin", action="store_true", help="the job's autobin setting")
    parser.add_argument("--split", action="store_true", help="target gets --split")
    parser.add_argument("--target-from", choices=TARGET_FROM, default="cnvkit default")
    parser.add_argument("--target-size", type=int, help="target_conf's --avg-size")
    parser.add_argument("--antitarget-from", choices=ANTITARGET_FROM, default="cnvkit default")
    parser.add_argument("--antitarget-size", type=int, help="antitarget_conf's -a/--avg-size")
    parser.add_argument("--bam", action="append", default=[], help="a BAM autobin may read")
    parser.add_argument("--targets", help="the target BED (the baits; with --check, targets)")
    parser.add_argument("--antitargets", help="with --check: the antitarget BED")
    parser.add_argument("--access", help="the job's access regions")
    parser.add_argument("--fasta")
    parser.add_argument("-o", "--output", help="bin_sizes.json")
    parser.add_argument("--words", help="the words of the target and antitarget lines (JSON)")
    parser.add_argument("--check", metavar="BIN_SIZES_JSON",
                        help="add the bin counts and fit warnings to this file")
    args = parser.parse_args(argv)
    if args.check:
        if not args.targets or not args.antitargets:
            parser.error("--check needs --targets and --antitargets")
    else:
        if not args.output or not args.words:
            parser.error("-o and --words are required")
        if "autobin" in (args.target_from, args.antitarget_from):
            if not args.bam:
                parser.error("autobin needs --bam")
            if args.method == "wgs" and not args.access:
                parser.error("autobin of a wgs job needs --access")
            if args.method != "wgs" and not args.targets:
                parser.error(f"autobin of a {args.method} job needs --targets")
    return args


def main(argv: list[str]) -> int:
    args = arguments(argv)
    if args.check:
        check(args)
        return 0
    record, words = plan(args)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    Path(args.words).write_text(json.dumps(words) + "\n")
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
