#!/usr/bin/env python3
"""What a pooled reference was built from: `reference.json` beside `reference.cnn`.

Usage: reference_record.py --fasta REF.fa --fai REF.fa.fai [--bed TARGETS.bed]
                           [--annotation FILE] [--control SAMPLE ...]
                           [--option FIELD=ARGS ...] [--method METHOD] [--autobin true|false]
                           [--bin-sizes bin_sizes.json] [--access-bed FILE]
                           [--access-exclude FILE ...] -o reference/reference.json

The record names the CNVkit and pipeline versions, the FASTA (contigs, size, SHA-256), the BED
(none for a wgs job without one) and annotation (SHA-256), the controls' sample names and the
option strings of the substeps that shape a reference (`SHAPING`); the method (hybrid,
amplicon, wgs; a record without one is of a hybrid reference), autobin, the bin sizes the
regions were made with (bin_sizes.py's "target" and "antitarget") and the access: access_conf,
the exclusion BEDs or the access BED given instead (name, SHA-256). A job that reuses the
reference compares its own FASTA, method and options with it (`contradictions`). Standard
library only: it runs in CNVkit's containers.
"""

import argparse
import hashlib
import importlib.metadata
import json
import re
import shlex
import sys
from pathlib import Path

FORMAT = "cnvkit-nf reference record 1"
# The request fields whose options shape a reference: the regions, the coverage, the pooling.
SHAPING = ("target_conf", "antitarget_conf", "coverage_conf", "reference_conf")
# Applied to every sample's coverage, so a reused reference needs the very same ones; the
# others are not applied when a reference is reused: left empty they mean "as recorded".
APPLIED_AGAIN = ("coverage_conf",)
MAX_BYTES = 16 << 20  # a record is a few KB; a larger file is refused unread


# Where the record of a reference lies: beside it, `x.cnn` -> `x.json`. A regex and its
# replacement, so that main.nf applies the very rule (nextflow_schema.json carries them).
RECORD_OF_REFERENCE = {"pattern": r"\.cnn$", "replacement": ".json"}


def record_path(cnn: str) -> str:
    """Where the record of a reference (a path or an object key) lies: `x.cnn` -> `x.json`."""
    return re.sub(RECORD_OF_REFERENCE["pattern"], RECORD_OF_REFERENCE["replacement"], cnn,
                  count=1)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fai_contigs(fai: Path) -> dict[str, int]:
    """`{contig: length}` from a FASTA index."""
    rows = (line.split("\t") for line in fai.read_text().splitlines() if line.strip())
    return {row[0]: int(row[1]) for row in rows}


def cnvkit_version() -> str | None:
    """The installed CNVkit's version; None where it is not installed."""
    try:
        return importlib.metadata.version("cnvkit")
    except importlib.metadata.PackageNotFoundError:
        return None


def read(path: Path) -> dict | None:
    """The record at `path`; None when there is none; ValueError when it is not one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_BYTES:
        raise ValueError(f"is larger than {MAX_BYTES} bytes: not a reference record")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"is not JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"is not a reference record (no \"format\": \"{FORMAT}\")")
    fasta, options = record.get("fasta"), record.get("options")
    if not (isinstance(fasta, dict) and isinstance(fasta.get("name"), str)
            and isinstance(fasta.get("sha256"), str) and isinstance(fasta.get("contigs"), dict)
            and all(isinstance(n, int) for n in fasta["contigs"].values())
            and isinstance(options, dict) and all(isinstance(v, str) for v in options.values())
            and all(isinstance(c, str) for c in record.get("controls") or [])):
        raise ValueError("is not a complete reference record (fasta: name, sha256, contigs; "
                         "options; controls)")
    return record


def method_contradiction(record: dict, method: str | None) -> list[str]:
    """Why a job of `method` (None: not compared) may not reuse the recorded reference for its
    method (records from before issue 25 are of hybrid references)."""
    built = record.get("method") or "hybrid"
    if method is None or built == method:
        return []
    return [f"it was built for method {built}, this job's method is {method}: give method "
            f"{built} or build a reference for {method}"]


def contradictions(record: dict, options: dict[str, str], fasta: Path,
                   fasta_contigs: dict[str, int], method: str | None = None) -> list[str]:
    """Why a job with `options`, this FASTA and `method` (None: not compared) may not reuse the
    recorded reference."""
    found = method_contradiction(record, method)
    built = record["fasta"]
    if built["contigs"] != fasta_contigs:
        found.append(f"it was built on another FASTA ({built['name']}, {len(built['contigs'])} "
                     f"contigs), whose contigs or lengths differ from this one's")
    elif built["sha256"] != sha256(fasta):
        found.append(f"it was built on another FASTA ({built['name']}): same contigs, other "
                     "content (SHA-256 differs)")
    for field in SHAPING:
        mine, theirs = options.get(field, ""), record["options"].get(field, "")
        if shlex.split(mine) == shlex.split(theirs):
            continue
        if mine.strip() or field in APPLIED_AGAIN:
            found.append(f"{field} '{mine}' contradicts the '{theirs}' it was built with; "
                         f"give {field} '{theirs}'" + ("" if field in APPLIED_AGAIN else
                                                       " or leave it empty"))
    return found


def build(args: argparse.Namespace) -> dict:
    def described(path: str | None) -> dict | None:
        return {"name": Path(path).name, "sha256": sha256(Path(path))} if path else None

    options = dict(pair.split("=", 1) for pair in args.option)
    sizes = json.loads(Path(args.bin_sizes).read_text()) if args.bin_sizes else None
    return {
        "format": FORMAT,
        "cnvkit": cnvkit_version(),
        "pipeline": args.pipeline,
        "fasta": {"name": Path(args.fasta).name, "size": Path(args.fasta).stat().st_size,
                  "sha256": sha256(Path(args.fasta)), "contigs": fai_contigs(Path(args.fai))},
        "bed": described(args.bed),
        "annotation": described(args.annotation),
        "controls": sorted(args.control),
        "options": {field: value for field, value in options.items() if field in SHAPING},
        "method": args.method,
        "autobin": args.autobin == "true",
        "bin_sizes": {kind: sizes.get(kind) for kind in ("target", "antitarget", "bins")}
        if sizes else None,
        "access": None if args.method == "amplicon" else {
            "options": options.get("access_conf", ""),
            "exclude": [described(path) for path in args.access_exclude],
            "bed": described(args.access_bed)},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--fai", required=True)
    parser.add_argument("--bed")
    parser.add_argument("--annotation")
    parser.add_argument("--control", action="append", default=[], metavar="SAMPLE")
    parser.add_argument("--option", action="append", default=[], metavar="FIELD=ARGS")
    parser.add_argument("--method", choices=("hybrid", "amplicon", "wgs"), default="hybrid")
    parser.add_argument("--autobin", choices=("true", "false"), default="false")
    parser.add_argument("--bin-sizes", metavar="FILE", help="the regions' bin_sizes.json")
    parser.add_argument("--access-bed", metavar="FILE", help="the access BED given")
    parser.add_argument("--access-exclude", action="append", default=[], metavar="FILE",
                        help="an exclusion BED of access")
    parser.add_argument("--pipeline", default="", help="the pipeline's version")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    Path(args.output).write_text(json.dumps(build(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
