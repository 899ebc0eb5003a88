#!/usr/bin/env python3
"""A big job's coverage in chunks of whole chromosomes, and each sample's chunks merged back.

`cnvkit.py coverage` reads one BED for one BAM in one process tree; a WGS job's bins (hundreds
of thousands) make that a task of hours per sample. The pipeline instead runs one coverage task
per (sample, chunk) when a job has more bins than `coverage_chunk_bins`:

    coverage_chunks.py split --max-bins N --targets T.bed --antitargets A.bed -o chunks/
        writes chunks/001.target.bed, chunks/001.antitarget.bed, 002..., each chunk a group of
        whole chromosomes, in the BEDs' order, balanced by bin count (target + antitarget lines)
    coverage_chunks.py merge -o S.targetcoverage.cnn S.001.targetcoverage.cnn S.002...
        writes the `.cnn` one task would have written

CNVkit's coverage is per bin: a bin's depth is its bases' read depth over its span, its log2
that depth's (cnvlib/coverage.py, interval_coverages_pileup), and the read length it divides by
comes from the BAM, not the BED; a bin's row therefore does not depend on the other bins of the
BED, and the rows of consecutive chunks, one header, are the rows of the whole BED. That holds
when each BED lists each chromosome's bins together and both BEDs list the chromosomes in one
order (CNVkit's target, antitarget and reference2targets write them so); otherwise the split
makes one chunk, the whole BEDs. Standard library only.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path


def chromosome_bins(path: Path | None) -> list[tuple[str, int]] | None:
    """The BED's chromosomes in order with their bin counts, or None when a chromosome's lines
    are not together (`coverage` skips `#` lines and blank ones, as here)."""
    runs: list[tuple[str, int]] = []
    if path is None:
        return runs
    with open(path) as handle:
        for line in handle:
            if not line.strip() or line.startswith("#"):
                continue
            chrom = line.split(None, 1)[0]
            if runs and runs[-1][0] == chrom:
                runs[-1] = (chrom, runs[-1][1] + 1)
            elif any(seen == chrom for seen, _ in runs):
                return None
            else:
                runs.append((chrom, 1))
    return runs


def common_order(*beds: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
    """The chromosomes of all BEDs in one order with their total bins, or None when two BEDs
    order the chromosomes they share differently."""
    order: list[str] = []
    for runs in beds:
        names = [chrom for chrom, _ in runs]
        shared = [chrom for chrom in names if chrom in order]
        if shared != [chrom for chrom in order if chrom in names]:
            return None
        # insert each new chromosome after the one it follows in this BED
        for i, chrom in enumerate(names):
            if chrom not in order:
                after = next((names[j] for j in range(i - 1, -1, -1) if names[j] in order), None)
                order.insert(order.index(after) + 1 if after else 0, chrom)
    totals = {chrom: 0 for chrom in order}
    for runs in beds:
        for chrom, bins in runs:
            totals[chrom] += bins
    return [(chrom, totals[chrom]) for chrom in order]


def _groups_within(weights: list[int], cap: int) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    total = 0
    for i, weight in enumerate(weights):
        if groups[-1] and total + weight > cap:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += weight
    return groups


def plan(chromosomes: list[tuple[str, int]], max_bins: int) -> list[list[str]]:
    """Consecutive groups of whole chromosomes: as many as bins / max_bins rounded up (fewer
    when a chromosome alone has more), the largest group as small as it can be."""
    weights = [bins for _, bins in chromosomes]
    total = sum(weights)
    wanted = max(1, math.ceil(total / max_bins))
    if wanted == 1 or len(weights) < 2:
        return [[chrom for chrom, _ in chromosomes]]
    low, high = max(weights), total  # smallest cap with at most `wanted` groups
    while low < high:
        middle = (low + high) // 2
        if len(_groups_within(weights, middle)) <= wanted:
            high = middle
        else:
            low = middle + 1
    return [[chromosomes[i][0] for i in group] for group in _groups_within(weights, low)]


def write_chunks(beds: dict[str, Path | None], groups: list[list[str]] | None, out: Path) -> None:
    """`out/NNN.KIND.bed` for every group and BED kind: the BED's lines on its chromosomes (an
    empty file when it has none there); groups None: one chunk of every line."""
    out.mkdir(parents=True, exist_ok=True)
    chunk_of = {chrom: i for i, group in enumerate(groups or []) for chrom in group}
    for kind, path in beds.items():
        handles = [open(out / f"{i + 1:03d}.{kind}.bed", "w") for i in range(len(groups or [0]))]
        try:
            if path is not None:
                with open(path) as handle:
                    for line in handle:
                        if line.strip() and not line.startswith("#"):
                            handles[chunk_of.get(line.split(None, 1)[0], 0)].write(line)
        finally:
            for handle in handles:
                handle.close()


def split(targets: Path, antitargets: Path | None, max_bins: int, out: Path) -> int:
    """Write the chunks; returns how many."""
    beds = {"target": targets, "antitarget": antitargets}
    runs = [chromosome_bins(path) for path in beds.values()]
    chromosomes = common_order(*runs) if None not in runs else None
    # not groupable: one chunk, the BEDs as they are
    groups = plan(chromosomes, max_bins) if chromosomes else None
    write_chunks(beds, groups, out)
    return len(groups) if groups else 1


def merge(chunks: list[Path], out: Path) -> None:
    """One `.cnn` of the chunks' rows in their order under one header. A chunk without bins
    is a header of CNVkit's required columns only; when no chunk has bins, the first is the
    file one task writes for an empty BED."""
    headers = {}
    for path in chunks:
        with open(path) as handle:
            header, row = handle.readline(), handle.readline()
        if row:
            headers[path] = header
    if not headers:
        shutil.copyfile(chunks[0], out)
        return
    if len(set(headers.values())) > 1:
        raise SystemExit(f"coverage chunks of {out.name} have different columns")
    with open(out, "w") as merged:
        merged.write(next(iter(headers.values())))
        for path in headers:
            with open(path) as handle:
                handle.readline()
                shutil.copyfileobj(handle, merged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    split_cmd = commands.add_parser("split", help="BEDs into chunks of whole chromosomes")
    split_cmd.add_argument("--targets", type=Path, required=True)
    split_cmd.add_argument("--antitargets", type=Path)
    split_cmd.add_argument("--max-bins", type=int, required=True)
    split_cmd.add_argument("-o", "--output-dir", type=Path, required=True)
    merge_cmd = commands.add_parser("merge", help="a sample's chunk .cnn files, in order")
    merge_cmd.add_argument("chunks", type=Path, nargs="+")
    merge_cmd.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "split":
        if args.max_bins < 1:
            parser.error("--max-bins must be at least 1")
        count = split(args.targets, args.antitargets, args.max_bins, args.output_dir)
        print(f"{count} chunk(s)", file=sys.stderr)
    else:
        merge(args.chunks, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
