#!/usr/bin/env python3
"""A tumour's genes of interest: their copy number and whether it is a call.

Usage (a line of the per-tumour stage, run by cnvkit_stage.py; see modules/cnvkit/sample):
  genes_of_interest.py CNR -s CNS --call-cns CALL_CNS --call-options=STRING --genes G1,G2,...
                       [-y] [-x SEX] [--diploid-parx-genome NAME] -o OUT.tsv

CNVkit's genemetrics (in this interpreter, by its own parser) reports every gene with at least
one bin (`-t 0 -m 1`, whatever genemetrics_conf's thresholds), with the sample's sex options,
from the .cnr and .cns: a row for each segment a gene lies in. It runs on a copy of the .cnr
holding only the bins from each gene of interest's first bin to its last (the bins CNVkit
groups with the gene), with the sample's sex as CNVkit infers it from the whole .cnr (-x), so
its rows are the whole .cnr's in a fraction of the time (every gene of an exome takes a
minute). The rows whose `gene` (a bin's names are joined with commas) holds a gene of interest
are kept, in the order of the genes asked for, with CNVkit's columns (gene, chromosome,
start, end, log2, depth, weight, probes, segment_weight, segment_probes) and three more:
  cn    the copy number of the .call.cns segment(s) the gene overlaps (comma-joined if several)
  call  `yes` when one of them is a call, `expected state` when their copy number is only the
        one the sample's sex expects (chrX, chrY), `no` otherwise (bin/expected_states.py)
  note  why a gene has no values: `not in the targets or annotation` (no bin of the .cnr
        names it; its other columns are empty), `genemetrics reports no row for it` (its
        bins are there), `no segment overlaps it`
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import expected_states
import numpy as np

NOT_FOUND = "not in the targets or annotation"
NO_SEGMENT = "no segment overlaps it"
NO_ROW = "genemetrics reports no row for it"
ADDED = ("cn", "call", "note")


def symbols(names: str) -> set[str]:
    """The gene symbols of a `gene` cell (CNVkit joins a bin's genes with commas)."""
    return set(names.split(","))


def overlapping(segments: list[dict[str, str]], chromosome: str, start: int,
                end: int) -> list[dict[str, str]]:
    """The segments (rows as text) that overlap chromosome:start-end."""
    return [row for row in segments if row["chromosome"] == chromosome
            and int(row["start"]) < end and int(row["end"]) > start]


def gene_rows(cnr, genes: list[str]) -> dict[str, list[int]]:
    """The positions in a CNVkit array `cnr` of each gene's bins; none when no bin names it."""
    wanted = set(genes)
    rows: dict[str, list[int]] = {gene: [] for gene in genes}
    for i, names in enumerate(cnr.data["gene"]):
        for gene in symbols(names) & wanted:
            rows[gene].append(i)
    return rows


def gene_spans(cnr, genes: list[str]) -> dict[str, list[tuple[str, int, int]]]:
    """Each gene's bins in a CNVkit array `cnr`, as (chromosome, start, end)."""
    bins = cnr.data[["chromosome", "start", "end"]].to_numpy()
    return {gene: [(bins[i][0], int(bins[i][1]), int(bins[i][2])) for i in rows]
            for gene, rows in gene_rows(cnr, genes).items()}


def around_genes(cnr, genes: list[str]):
    """`cnr`'s bins from each gene's first bin to its last on each chromosome (CNVkit groups
    the bins between, antitargets too, with the gene), or None when no bin names a gene."""
    keep = np.zeros(len(cnr), dtype=bool)
    chromosomes = cnr.data["chromosome"].to_numpy()
    for rows in gene_rows(cnr, genes).values():
        for chromosome in dict.fromkeys(chromosomes[rows]):
            on = [i for i in rows if chromosomes[i] == chromosome]
            keep[on[0]:on[-1] + 1] = True
    return cnr[keep] if keep.any() else None


def call_state(segments: list[dict[str, str]], states: expected_states.States) -> str:
    """`yes`, `expected state` or `no` (see the module) for the segments a gene overlaps."""
    def key(row):
        return row["chromosome"], row["start"], row["end"]

    called = {key(row) for row in states.calls}
    expected = {key(row) for row in states.expected}
    if any(key(row) in called for row in segments):
        return "yes"
    if any(key(row) in expected for row in segments):
        return "expected state"
    return "no"


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="genes_of_interest.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("cnr")
    parser.add_argument("-s", "--segment", required=True, help="the tumour's .cns")
    parser.add_argument("--call-cns", required=True, help="the tumour's .call.cns")
    parser.add_argument("--call-options", required=True, metavar="STRING",
                        help="call's options as the tumour was called (write --call-options=...)")
    parser.add_argument("--genes", required=True, metavar="G1,G2,...")
    parser.add_argument("-y", "--male-reference", action="store_true")
    parser.add_argument("-x", "--sample-sex")
    parser.add_argument("--diploid-parx-genome")
    parser.add_argument("-o", "--output", required=True)
    return parser.parse_args(argv)


def genemetrics(args: argparse.Namespace, cnr, genes: list[str],
                folder: str) -> list[dict[str, str]]:
    """CNVkit's genemetrics -t 0 -m 1 (with the sample's sex) of the bins around the genes (see
    the module): its rows, as text."""
    from cnvlib import cmdutil, commands  # noqa: PLC0415 - loaded already in a stage
    from skgenome import tabio  # noqa: PLC0415

    bins = around_genes(cnr, genes)
    if bins is None:
        return []
    female = cmdutil.verify_sample_sex(cnr, args.sample_sex, args.male_reference,
                                       args.diploid_parx_genome)
    ratios, output = os.path.join(folder, os.path.basename(args.cnr)), os.path.join(
        folder, "genemetrics.tsv")
    tabio.write(bins, ratios)
    words = ["genemetrics", ratios, "-s", args.segment, "-t", "0", "-m", "1",
             "-x", "female" if female else "male", "-o", output]
    words += ["-y"] if args.male_reference else []
    words += ["--diploid-parx-genome", args.diploid_parx_genome] \
        if args.diploid_parx_genome else []
    parsed = commands.parse_args(words)
    parsed.func(parsed)
    with open(output, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def main(argv: list[str]) -> int:
    args = arguments(argv)
    from cnvlib import read  # noqa: PLC0415

    genes = list(dict.fromkeys(filter(None, args.genes.split(","))))
    cnr = read(args.cnr)
    with tempfile.TemporaryDirectory() as folder:
        metrics = genemetrics(args, cnr, genes, folder)
    states = expected_states.states(Path(args.call_cns), args.call_options)
    with open(args.call_cns, encoding="utf-8", newline="") as handle:
        segments = list(csv.DictReader(handle, delimiter="\t"))
    in_bins = {gene for gene, rows in gene_rows(cnr, genes).items() if rows}
    columns = [*(metrics[0].keys() if metrics else ("gene", "chromosome", "start", "end",
                                                    "log2")), *ADDED]
    rows = []
    for gene in genes:
        found = [row for row in metrics if gene in symbols(row["gene"])]
        if not found:
            rows.append({"gene": gene, "note": NO_ROW if gene in in_bins else NOT_FOUND})
        for row in found:
            hits = overlapping(segments, row["chromosome"], int(row["start"]), int(row["end"]))
            rows.append({**row, "cn": ",".join(hit.get("cn", "") for hit in hits),
                         "call": call_state(hits, states) if hits else "",
                         "note": "" if hits else NO_SEGMENT})
    with open(args.output, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns, delimiter="\t", restval="",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    missing = [row["gene"] for row in rows if row.get("note") == NOT_FOUND]
    if missing:
        print(f"genes_of_interest.py: {NOT_FOUND}: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
