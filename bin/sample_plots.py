#!/usr/bin/env python3
"""A tumour's scatter plots, drawn by CNVkit's own scatter: the genome, each chromosome with a
call, each gene of interest a call overlaps.

Usage (a line of the per-tumour stage, run by cnvkit_stage.py; see modules/cnvkit/sample):
  sample_plots.py CNR -s CALL_CNS --call-options=STRING [--genes G1,G2,...]
                  [-v VCF -i ID [-n NORMAL]] -o OUT_PREFIX

Writes, each by `cnvkit.py scatter` parsed and run in this interpreter (with -v/-i/-n: the BAF
panel too):
  OUT_PREFIX-scatter.png   the genome on the primary chromosomes (1-22, X, Y, with or without
      `chr`; every contig when none is named so): the .cnr and .call.cns are copied without the
      other contigs (unplaced, alternative, decoy), which are named on stderr. 20 x 5 inches
      (2,000 pixels at matplotlib's 100 dpi, 3 times the default's width), so that an exome's
      200,000 bins spread over 24 chromosomes leave the segments' lines readable; wider only
      adds bytes to a report that embeds every tumour's. (CNVkit draws the genome's bins all
      alike: -a, the off-target marker, applies only to the zoomed plots below.)
  OUT_PREFIX-chromosome-CHROM-scatter.png   each chromosome with a call (bin/expected_states.py:
      a copy number other than the one call expects for the sample's sex and ploidy), its
      off-target bins drawn as small dots (-a .) so that the targets stand out.
  OUT_PREFIX-gene-GENE-scatter.png   each gene of interest that a call overlaps (named in the
      call's `gene` column, or one of the gene's bins in the .cnr overlapping the call), zoomed
      on the gene (-g GENE).
CHROM keeps letters, digits and . _ -, other characters become _. Each PNG is CNVkit's, byte for
byte (the report embeds them palette-reduced). Each plot is optional: one that fails is named on
stderr with why, its partial file removed, and the others are drawn.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import expected_states
import genes_of_interest

PRIMARY = re.compile(r"^(chr)?([1-9]|1[0-9]|2[0-2]|X|Y)$")
FIG_SIZE = ("20", "5")  # inches: see the module's docstring
ANTITARGET_MARKER = "."  # off-target bins of a chromosome's or a gene's plot
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sample_plots.py", description=__doc__.split("\n")[0])
    parser.add_argument("cnr")
    parser.add_argument("-s", "--segment", required=True, help="the tumour's .call.cns")
    parser.add_argument("--call-options", required=True, metavar="STRING",
                        help="call's options as the tumour was called (write --call-options=...)")
    parser.add_argument("--genes", default="", metavar="G1,G2,...")
    parser.add_argument("-v", "--vcf")
    parser.add_argument("-i", "--sample-id")
    parser.add_argument("-n", "--normal-id")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX")
    return parser.parse_args(argv)


def primary_copy(path: str, folder: str, primary: set[str]) -> str:
    """A copy of a CNVkit table in `folder` (same file name, so the same sample id) with only
    the rows of the `primary` chromosomes."""
    copy = os.path.join(folder, os.path.basename(path))
    with open(path, encoding="utf-8") as source, open(copy, "w", encoding="utf-8") as out:
        out.write(next(source))
        out.writelines(line for line in source if line.split("\t", 1)[0] in primary)
    return copy


def draw(words: list[str], output: str) -> None:
    """One `cnvkit.py scatter` (CNVkit's parser and function) to `output`; a failure is logged
    and its partial file removed."""
    from cnvlib import commands  # noqa: PLC0415 - loaded already in a stage
    from matplotlib import pyplot  # noqa: PLC0415

    try:
        args = commands.parse_args(["scatter", *words, "-o", output])
        args.func(args)
    except Exception as err:  # noqa: BLE001 - a plot that fails leaves the others going
        Path(output).unlink(missing_ok=True)
        print(f"sample_plots.py: {os.path.basename(output)} not drawn: "
              f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
    finally:
        pyplot.close("all")


def called_genes(genes: list[str], cnr, calls: list[dict[str, str]]) -> list[str]:
    """The genes of interest a call overlaps: named in its `gene` column, or one of their bins
    in the .cnr overlapping it."""
    spans = genes_of_interest.gene_spans(cnr, genes)
    named = {gene for row in calls for gene in genes_of_interest.symbols(row.get("gene", ""))}
    return [gene for gene in genes if gene in named or any(
        genes_of_interest.overlapping(calls, *span) for span in spans[gene])]


def main(argv: list[str]) -> int:
    args = arguments(argv)
    from cnvlib import read  # noqa: PLC0415

    variants = [word for option, value in (("-v", args.vcf), ("-i", args.sample_id),
                                           ("-n", args.normal_id)) if value
                for word in (option, value)]
    cnr = read(args.cnr)
    contigs = list(dict.fromkeys(cnr.chromosome))
    primary = {name for name in contigs if PRIMARY.match(name)}
    left_out = [name for name in contigs if name not in primary] if primary else []
    if left_out:
        print(f"sample_plots.py: the genome-wide scatter leaves out {len(left_out)} contig(s) "
              f"not among chromosomes 1-22, X and Y: {', '.join(left_out)}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        ratios, segments = ((primary_copy(args.cnr, folder, primary),
                             primary_copy(args.segment, folder, primary))
                            if left_out else (args.cnr, args.segment))
        draw([ratios, "-s", segments, *variants, "--fig-size", *FIG_SIZE],
             f"{args.output}-scatter.png")
    calls = expected_states.states(Path(args.segment), args.call_options).calls
    zoomed = ["-a", ANTITARGET_MARKER, *variants]
    for chromosome in dict.fromkeys(row["chromosome"] for row in calls):
        draw([args.cnr, "-s", args.segment, "-c", chromosome, *zoomed],
             f"{args.output}-chromosome-{UNSAFE.sub('_', chromosome)}-scatter.png")
    genes = list(dict.fromkeys(filter(None, args.genes.split(","))))
    for gene in called_genes(genes, cnr, calls) if genes else []:
        draw([args.cnr, "-s", args.segment, "-g", gene, *zoomed],
             f"{args.output}-gene-{gene}-scatter.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
