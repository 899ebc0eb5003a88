#!/usr/bin/env python3
"""Write a job's one-page report (report.html) and its MultiQC table from the cohort's results.

Usage: cnvkit_report.py --job job.json --results results.txt --sex sex.tsv
         --reference-sex reference-sex.tsv --metrics metrics.tsv --calls S.call.cns...
         [--samples samples.json --call-options=CALL_CONF] [--ratios S.cnr...]
         [--bin-sizes bin_sizes.json] [--controls-metrics controls-metrics.tsv]
         [--scatters S-scatter.png... --panels S-*-scatter.png S-diagram.svg...
          --genes-of-interest S.genes_of_interest.tsv... --bintests S.bintest.cns...
          --heatmap heatmap.png --html report.html] --multiqc cnvkit_mqc.tsv

A reviewer reads, per tumour: its calls apart from the copy numbers its sex expects
(bin/expected_states.py), each with its size, probes, log2, confidence interval and bintest
p-value; its genes of interest; its QC against limits that name their source and against the
cohort (bin/report_qc.py); what it was called with; its plots and files. The controls are
judged too (each against a reference of the others). `--samples` gives every sample's facts
(the workflow's rows: id, role, sex, purity, ploidy, vcf, vcf_sample, normal, and each
tumour's call_facts): the report checks each given sex against the one CNVkit infers (a
mismatch is a QC warning: a sample swap?). The page is one file: images and CSV downloads are
embedded, nothing is fetched; links are relative to the results folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import expected_states
import genes_of_interest
import report_qc
from report_html import STYLE, csv_download, details, esc, image, link, span, table
from sample_plots import PRIMARY  # what the genome-wide plot draws

GENES_SHOWN = 6
SEX_CHROMOSOMES = {"chrX", "chrY", "X", "Y"}
KNOWN_SEXES = {"Male", "Female"}  # `cnvkit.py sex` says Unknown without usable chrX data
# Written after the tasks: Nextflow's run records, and the manifest of the published result.
JOB_FILES = ["pipeline_info/", "manifest.json"]
CALL_COLUMNS = ["chromosome", "start", "end", "size (bp)", "probes", "log2", "CI low",
                "CI high", "bintest p", "cn", "genes"]
GOI_COLUMNS = ["gene", "chromosome", "start", "end", "log2", "probes", "cn", "call", "note"]


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def sample_of(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


def sexes(sex_tsv: Path) -> dict[str, str]:
    """Sex per sample, from its target coverage (raw coverage, independent of the reference)."""
    return {sample_of(Path(row["sample"]), ".targetcoverage.cnn"): row["sex"]
            for row in read_table(sex_tsv) if row["sample"].endswith(".targetcoverage.cnn")}


def reference_sexes(reference_sex_tsv: Path) -> dict[str, str]:
    """The sex CNVkit infers from each reference: `reference.cnn`, or a sample's own
    (leave-one-out) `ID.reference.cnn`."""
    return {Path(row["sample"]).name: row["sex"] for row in read_table(reference_sex_tsv)}


def reference_sex_of(name: str, references: dict[str, str]) -> str:
    """The sex of the reference a tumour was called against: its own (leave-one-out), else
    the job's one (built, given or reused, whatever its name)."""
    if f"{name}.reference.cnn" in references:
        return references[f"{name}.reference.cnn"]
    return next(iter(references.values())) if len(references) == 1 else "Unknown"


def sex_check(given: str | None, inferred: str | None) -> str:
    """A given sex against the one CNVkit infers from the coverage: `ok`, `not given`, not
    checked (no coverage), `cannot tell` (CNVkit cannot), or the mismatch, a QC warning (a
    sample swap?)."""
    if not given:
        return "not given"
    if inferred is None:
        return "not checked: no coverage (a matched normal left out of the pool)"
    if inferred not in KNOWN_SEXES:
        return "cannot tell"
    if given.capitalize() == inferred:
        return "ok"
    return f"MISMATCH: given {given}, CNVkit infers {inferred.lower()}"


def reference_note(sample_sex: str, reference_sex: str) -> str:
    """What the reference's sex means for the sample: information, not a failure."""
    if reference_sex not in KNOWN_SEXES:
        return "reference sex unknown: CNVkit cannot tell it from the reference's chrX"
    if sample_sex.capitalize() == reference_sex:
        return f"{reference_sex.lower()} reference, as the sample"
    return f"{reference_sex.lower()} reference, {sample_sex} sample: usual, not a call (below)"


def metrics_of(metrics_tsv: Path | None) -> dict[str, dict[str, float]]:
    """`cnvkit.py metrics` per sample (its .cnr name): stdev, mad, iqr, bivar and segments."""
    table_ = {}
    for row in read_table(metrics_tsv) if metrics_tsv else []:
        name = Path(row["sample"]).name.removesuffix(".cnr")
        table_[name] = {key: float(value) for key, value in row.items() if key != "sample"}
    return table_


def genes(cell: str) -> str:
    """The names in a gene column (symbols, else target names), the first few and a count."""
    names = [g for g in dict.fromkeys((cell or "").split(",")) if g and g != "-"]
    shown = ", ".join(names[:GENES_SHOWN])
    return shown + (f" and {len(names) - GENES_SHOWN} more" if len(names) > GENES_SHOWN else "")


def bintest_p(call: dict[str, str], bins: list[dict[str, str]]) -> str:
    """The smallest bintest p-value of the significant bins inside the call, if any."""
    inside = genes_of_interest.overlapping(bins, call["chromosome"], int(call["start"]),
                                           int(call["end"]))
    found = [float(b["p_bintest"]) for b in inside if b.get("p_bintest")]
    return f"{min(found):.2g}" if found else ""


@dataclass
class Tumour:
    """What the report shows of one tumour."""

    name: str
    row: dict
    states: expected_states.States
    call_conf: str  # the job's call options; the sample's own are its row's call_facts
    chromosomes: list[str]
    bintests: list[dict[str, str]] = field(default_factory=list)
    genes: list[dict[str, str]] = field(default_factory=list)
    scatter: Path | None = None
    panels: list[tuple[str, Path]] = field(default_factory=list)  # (what, PNG)
    diagram: Path | None = None

    def call_rows(self, rows: list[dict[str, str]]) -> list[list[str]]:
        return [[r["chromosome"], r["start"], r["end"], f"{int(r['end']) - int(r['start']):,}",
                 r.get("probes", ""), f"{float(r['log2']):+.3f}",
                 f"{float(r['ci_lo']):+.3f}" if r.get("ci_lo") else "",
                 f"{float(r['ci_hi']):+.3f}" if r.get("ci_hi") else "",
                 bintest_p(r, self.bintests), r["cn"], genes(r.get("gene", ""))]
                for r in rows]


def assumptions(tumour: Tumour, inferred: str | None, reference_sex: str,
                origin: str, bins: str) -> dict[str, str]:
    """What a tumour was called with, as CNVkit's `call` parser reads call_conf and then its
    facts; each value with where it comes from (the sample's row, call_conf, or CNVkit's
    default)."""
    row = tumour.row
    default = expected_states.call_settings("")
    conf = expected_states.call_settings(tumour.call_conf)
    args = expected_states.call_settings(f"{tumour.call_conf} {row.get('call_facts') or ''}")

    def source(key: str, attribute: str) -> str:
        if row.get(key) is not None:
            return "given for the sample"
        return "call_conf" if getattr(conf, attribute) != getattr(default, attribute) else \
            "CNVkit's default"

    if args.center_at is not None:
        centring = f"shifted by {args.center_at:g} (--center-at, call_conf)"
    elif args.center:
        centring = f"re-centred on the {args.center} (--center, call_conf)"
    else:
        centring = "CNVkit's default: fix centres on the median, call does not re-centre"
    method = args.method + (f" ({', '.join(f'{t:g}' for t in args.thresholds)})"
                            if args.method == "threshold" else "")
    return {
        "purity": (f"{args.purity:g} ({source('purity', 'purity')})" if args.purity is not None
                   else "not given: no rescaling for purity"),
        "ploidy": f"{args.ploidy:g} ({source('ploidy', 'ploidy')})",
        "sex": (f"{args.sample_sex} ({source('sex', 'sample_sex')})" if args.sample_sex
                else f"{tumour.states.sex} (inferred by CNVkit's call; coverage says "
                     f"{(inferred or 'unknown').lower()})"),
        "centring": centring,
        "call method": method + (f", filters {', '.join(args.filters)}" if args.filters else ""),
        "reference": f"{reference_sex.lower()}; {origin}",
        "bins": bins,
        "variants": (f"{row['vcf']}: column {args.sample_id}"
                     + (f", the normal's column {args.normal_id}" if args.normal_id else "")
                     if args.vcf else "none"),
    }


def reference_origin(about: dict, results: list[str]) -> tuple[str, str]:
    """Where the job's reference came from, as HTML (with the launcher's warning about the
    kept references, if any) and as a short phrase."""
    reference = about.get("reference") or {}
    given = (about.get("request") or {}).get("reference_cnn")
    record = next((p for p in results if p.endswith("reference/reference.json")), None)
    with_record = f" Its record: {link(record)}." if record else ""
    if reference.get("reused"):
        short = "reused"
        origin = ("The reference was <b>reused</b>: built by an earlier job of this project "
                  "from the same controls, FASTA, BED, annotation, CNVkit version and options.")
    elif given:
        short = f"given ({given})"
        origin = (f"The reference was <b>given</b> (reference_cnn {esc(given)}); "
                  "no control was processed.")
    else:
        short = "built by this job"
        origin = "The reference was built by this job from its controls (flat without any)."
    warning = reference.get("warning")
    return (origin + with_record + (f' <span class="flag">Warning: {esc(warning)}.</span>'
                                    if warning else ""), short)


SIZE_SOURCES = {
    "target_conf": "given in target_conf", "antitarget_conf": "given in antitarget_conf",
    "autobin": "CNVkit's autobin", "wgs default": "batch's WGS default",
    "cnvkit default": "CNVkit's default (no size passed)",
}


def bins_phrase(bin_sizes: dict | None) -> str:
    if not bin_sizes:
        return "the reused reference's bins"
    sizes = []
    for kind in ("target", "antitarget"):
        entry = bin_sizes.get(kind) or {}
        count = (bin_sizes.get("bins") or {}).get(kind, 0)
        if entry.get("from") != "none":
            size = entry.get("avg_size")
            sizes.append(f"{count:,} {kind}s of {'default size' if size is None else f'{size} bp'}")
    return ", ".join(sizes) or "none"


def assay_section(bin_sizes: dict | None, request: dict) -> list[str]:
    """The method, the bin sizes the regions were made with and where they came from, and the
    warnings of bin_sizes.json (bin/bin_sizes.py); without one (a reused reference's regions),
    the method only."""
    method = (bin_sizes or {}).get("method") or request.get("method") or "hybrid"
    parts = [f"<h2>Assay and bins</h2><p>Method <b>{esc(method)}</b>"]
    if not bin_sizes:
        return [parts[0] + ": the regions are the reused reference's bins.</p>"]
    parts[0] += (", autobin " + ("on" if bin_sizes.get("autobin") else "off") + ".</p>")
    rows = []
    bins = bin_sizes.get("bins") or {}
    for kind in ("target", "antitarget"):
        entry = bin_sizes.get(kind) or {}
        if entry.get("from") == "none":
            rows.append([kind, "none", f"no {kind}s ({esc(method)})", str(bins.get(kind, 0)), ""])
            continue
        size = entry.get("avg_size")
        autobin = (f"depth {entry['depth']:.2f} of {esc(entry.get('bam'))}"
                   if entry.get("depth") is not None else "")
        rows.append([kind, "CNVkit's default" if size is None else f"{size} bp",
                     esc(SIZE_SOURCES.get(entry.get("from"), str(entry.get("from")))),
                     str(bins.get(kind, "")), autobin])
    parts.append(table(["bins", "average size", "from", "count", "autobin"], rows, raw=True))
    for warning in bin_sizes.get("warnings") or []:
        parts.append(f'<p class="flag">Warning: {esc(warning)}.</p>')
    return parts


def qc_cell(flags: list[str]) -> str:
    return span("flag", "; ".join(flags)) if flags else span("ok", "none")


def qc_section(limits: dict[str, report_qc.Limit]) -> str:
    rows = [[key, f"{limit.value:.3g}", limit.source] for key, limit in limits.items()]
    return ("<h2>How QC is judged</h2><p>Each sample's <code>cnvkit.py metrics</code> (noise of "
            "the bin log2 ratios around their segments, and the segment count) against these "
            "limits, and against the cohort: a value "
            f"{esc(report_qc.cohort_rule('samples of its group'))} is flagged.</p>"
            + table(["metric", "limit", "source"], rows))


def controls_section(panel: dict[str, dict[str, float]], method: str, origin: str,
                     control_ids: list[str]) -> list[str]:
    """The panel's quality: each control's noise against a reference built from the others,
    flagged against the fixed limits and the other controls; a noisy control is named."""
    parts = ["<h2>Controls (panel of normals)</h2>"]
    if not panel:
        why = ("the reference was not built from 2 or more controls of this job "
               f"({origin}{', ' + str(len(control_ids)) + ' control(s)' if control_ids else ''})")
        return parts + [f"<p>The controls are not judged: {esc(why)}.</p>"]
    fixed = report_qc.limits(method, None, {})
    outliers = report_qc.outliers(panel, report_qc.ROBUST)
    rows, noisy = [], []
    for name, values in panel.items():
        flags = report_qc.over_limits({k: values[k] for k in report_qc.ROBUST if k in values},
                                      fixed) + outliers[name]
        if flags:
            noisy.append(name)
        rows.append([esc(name), *(f"{values.get(k, float('nan')):.3g}" for k in report_qc.NOISE),
                     qc_cell(flags)])
    parts += ["<p>Each control's coverage against a reference pooled from the other controls "
              "(<code>reference/controls-metrics.tsv</code>). Judged on MAD and IQR (stdev "
              "swings with a few far bins, such as a female's chrY against male controls): "
              f"the fixed limits of the assay, and {esc(report_qc.cohort_rule('controls'))}."
              "</p>",
              table(["control", *report_qc.NOISE, "QC flags"], rows, raw=True)]
    for name in noisy:
        parts.append(f"<p class='flag'>Control {esc(name)} is noisy: consider dropping it from "
                     "the controls and running the job again; its noise enters the reference "
                     "every tumour is called against.</p>")
    return parts


def genes_section(tumour: Tumour, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    rows = [[row.get(k, "") for k in GOI_COLUMNS] for row in tumour.genes]
    missing = [row["gene"] for row in tumour.genes if not row.get("chromosome")]
    parts = ["<h3>Genes of interest</h3>"]
    if not tumour.genes:
        return parts + ["<p class='flag'>No table of genes of interest was written for this "
                        "sample (the CNVKIT_SAMPLE task's log says why).</p>"]
    kinds = ["" if row.get("call") == "yes" else "expected" for row in tumour.genes]
    parts += [table(GOI_COLUMNS, rows, row_class=kinds),
              csv_download(f"{tumour.name}.genes_of_interest.csv", GOI_COLUMNS, rows,
                           "Download genes of interest (CSV)")]
    if missing:
        parts.append(f"<p class='flag'>Not in the targets or annotation: "
                     f"{esc(', '.join(missing))}.</p>")
    return parts


def plots_section(tumour: Tumour, left_out: list[str]) -> list[str]:
    parts = ["<h3>Plots</h3>"]
    if tumour.scatter:
        baf = " with the B-allele frequencies of its SNV VCF below" if tumour.row.get("vcf") \
            else ""
        omitted = (f" Left out: {len(left_out)} contigs that are not primary chromosomes "
                   f"({esc(', '.join(left_out[:8]))}{' ...' if len(left_out) > 8 else ''})."
                   if left_out else "")
        parts.append(f"<figure>{image(tumour.scatter, f'scatter plot of {tumour.name}')}"
                     f"<figcaption>Genome-wide: bin log2 ratios and segments{baf}.{omitted}"
                     "</figcaption></figure>")
    else:
        parts.append("<p class='flag'>No scatter plot: CNVkit could not draw it (the "
                     "CNVKIT_SAMPLE task's log says why).</p>")
    genes_ = [(what, png) for what, png in tumour.panels if what.startswith("gene ")]
    chromosomes = [(what, png) for what, png in tumour.panels if not what.startswith("gene ")]
    for title, group in (("Genes of interest with a call, zoomed", genes_),
                         ("Each chromosome with a call", chromosomes)):
        if group:
            parts.append(details(esc(title), "".join(
                f"<figure>{image(png, f'{tumour.name} {what}')}<figcaption>{esc(what)}"
                "</figcaption></figure>" for what, png in group), open_=bool(genes_)
                and group is genes_))
    if tumour.diagram:
        parts.append(details("Diagram", image(tumour.diagram, f"diagram of {tumour.name}")))
    return parts


def sample_section(tumour: Tumour, context: dict) -> list[str]:
    name, states = tumour.name, tumour.states
    parts = [f"<section class='sample' id='{esc(name)}'><h2>{esc(name)}</h2>"]
    qc = context["flags"][name]
    parts.append(f"<p>QC: {qc_cell(qc)}</p>")
    parts.append(table(["assumption", "value"],
                       [[k, v] for k, v in context["assumptions"][name].items()]))
    parts.append(f"<h3>Calls ({len(states.calls)})</h3>")
    calls = tumour.call_rows(states.calls)
    if calls:
        parts += [table(CALL_COLUMNS, calls),
                  csv_download(f"{name}.calls.csv", CALL_COLUMNS, calls, "Download calls (CSV)")]
    else:
        parts.append(f"<p>No calls: every segment has the copy number expected of a "
                     f"{states.sex} sample of ploidy {states.ploidy}.</p>")
    if states.expected:
        parts.append(f"<h3 class='expected'>Expected states ({len(states.expected)}), not "
                     "calls</h3><p class='expected'>Copy numbers CNVkit's call expects of a "
                     f"{states.sex} sample (sex chromosomes): not counted as calls.</p>")
        parts.append(table(CALL_COLUMNS, tumour.call_rows(states.expected),
                           row_class=["expected"] * len(states.expected)))
    parts += genes_section(tumour, context["genes_of_interest"])
    parts += plots_section(tumour, context["left_out"][name])
    files = [p for p in context["results"] if p.startswith(f"samples/{name}/")]
    parts.append(details(f"Files of {esc(name)} ({len(files)})",
                         "<ul>" + "".join(f"<li>{link(p)}</li>" for p in files) + "</ul>"))
    return [*parts, "</section>"]


def render(job: dict, results: list[str], sex: dict[str, str], references: dict[str, str],
           metrics: dict[str, dict[str, float]], tumours: dict[str, Tumour],
           rows: list[dict], panel: dict[str, dict[str, float]], bins: int | None,
           heatmap: Path | None, bin_sizes: dict | None = None) -> str:
    about = job["job"]
    request = about.get("request") or {}
    submitted = datetime.datetime.fromisoformat(about["submitted"])
    elapsed = datetime.datetime.now(submitted.tzinfo) - submitted
    versions = {"pipeline": job["pipeline"], "CNVkit": importlib.metadata.version("cnvkit"),
                "Nextflow": job["nextflow"]}
    who = (f"Job <b>{esc(about['instance_id'])}</b>, submitted" if "instance_id" in about
           else f"Run <b>{esc(about['run_name'])}</b>, started")
    method = (bin_sizes or {}).get("method") or request.get("method") or "hybrid"
    limits = report_qc.limits(method, bins, panel)
    group = {name: metrics.get(name, {}) for name in tumours}
    outliers = report_qc.outliers(group)
    origin_html, origin = reference_origin(about, results)
    loo = len(references) > 1  # each tumour its own reference (leave-one-out)
    context = {"results": results, "genes_of_interest": request.get("genes_of_interest") or [],
               "flags": {n: report_qc.over_limits(group[n], limits) + outliers[n]
                         for n in tumours},
               "left_out": {n: [c for c in t.chromosomes if not PRIMARY.match(c)]
                            for n, t in tumours.items()},
               "assumptions": {n: assumptions(t, sex.get(n), reference_sex_of(n, references),
                                              "leave-one-out" if loo else origin,
                                              bins_phrase(bin_sizes))
                               for n, t in tumours.items()}}
    summary = []
    for name, tumour in tumours.items():
        states = tumour.states
        summary.append([
            f"<a href='#{esc(name)}'>{esc(name)}</a>",
            esc(f"{states.sex} ({'given' if states.sex_given else 'inferred'})"),
            span("info", reference_note(states.sex, reference_sex_of(name, references))),
            *(f"{metrics.get(name, {}).get(k, float('nan')):.3g}" for k in report_qc.METRICS),
            str(len(states.calls)),
            span("expected", str(len(states.expected))),
            qc_cell(context["flags"][name]),
        ])
    left_out = sorted({c for cs in context["left_out"].values() for c in cs})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>CNVkit report: {esc(about.get('instance_id') or about['run_name'])}"
        f"</title><style>{STYLE}</style></head><body>",
        f"<h1>CNVkit copy-number report</h1><p>{who} {esc(about['submitted'])}, "
        f"report written {int(elapsed.total_seconds())} s later. "
        + ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items()) + ".</p>",
        "<p>A call is a segment whose copy number (<code>cn</code>, from "
        "<code>cnvkit.py call</code>) differs from what call expects of the sample: its ploidy "
        "on autosomes, and on chrX and chrY what its sex expects (one copy each in a male, "
        "none of chrY in a female). Those expected states are listed apart, greyed, and not "
        "counted. <code>cn</code> assumes the purity and ploidy given (else a pure diploid "
        "sample) and the centring of each sample's assumptions.</p>",
        *assay_section(bin_sizes, request),
        "<h2>Samples</h2>",
        ("<p>Leave-one-out: each sample was called against its own reference, pooled from "
         "all the other samples' coverage (reference/leave-one-out/SAMPLE.reference.cnn).</p>"
         if loo else f"<p>{origin_html}</p>"),
        table(["sample", "sex (as called)", "reference sex (information)",
               *report_qc.METRICS, "calls", "expected states", "QC flags"], summary, raw=True),
        "<p class='info'>The reference sex is information: CNVkit's reference is female unless "
        "built with -y, and a male sample against it is the usual practice; its chrX and chrY "
        "log2 ratios are offset, which call accounts for.</p>",
        qc_section(limits),
        *controls_section(panel, method, origin,
                          [r["id"] for r in rows if r.get("role") == "control"]),
    ]
    if left_out:
        parts.append(f"<p>The genome-wide plots draw the primary chromosomes only; "
                     f"{len(left_out)} other contigs are left out: "
                     f"{esc(', '.join(left_out[:20]))}{' ...' if len(left_out) > 20 else ''}."
                     "</p>")
    if heatmap:
        parts.append("<h2>Cohort heatmap</h2>"
                     f"<figure>{image(heatmap, 'heatmap of the cohort')}<figcaption>Segment "
                     "log2 ratios of every tumour (cnvkit.py heatmap).</figcaption></figure>")
    if rows:
        checks = [[row["id"], row["role"], row.get("sex") or "", sex.get(row["id"], "not covered"),
                   sex_check(row.get("sex"), sex.get(row["id"]))] for row in rows]
        parts += [
            "<h2>Sex given and inferred</h2><p>Each given sex against the one CNVkit infers from "
            "the sample's target coverage: a mismatch is a QC warning (a sample swap?).</p>",
            table(["sample", "role", "given", "inferred", "check"],
                  [[esc(v) for v in check[:4]]
                   + [span("flag" if check[4].startswith("MISMATCH") else "ok", check[4])]
                   for check in checks], raw=True),
        ]
    for tumour in tumours.values():
        parts += sample_section(tumour, context)
    job_files = [p for p in results if not p.startswith("samples/")] + JOB_FILES
    parts += [
        "<h2>Files of the job</h2><ul>", *(f"<li>{link(p)}</li>" for p in job_files), "</ul>",
        details("Request", "<pre>" + esc(json.dumps(request, indent=2, sort_keys=True,
                                                      default=str)) + "</pre>"),
        "</body></html>",
    ]
    return "\n".join(parts)


def multiqc_table(sex: dict[str, str], metrics: dict[str, dict[str, float]],
                  tumours: dict[str, Tumour], rows: list[dict]) -> str:
    """MultiQC custom content: a general-statistics table of sex, noise, calls and expected
    states (not calls); when some sample was given its sex, every sample's sex check too."""
    header = [
        "# id: 'cnvkit'",
        "# section_name: 'CNVkit'",
        "# description: 'Sex inferred by CNVkit, noise (MAD of bin log2 ratios), calls, and "
        "expected states (copy numbers the sample''s sex expects on chrX/chrY, not calls).'",
        "# plot_type: 'generalstats'",
        "# pconfig:",
        "#     - cnvkit_sex:",
        "#         title: 'Sex'",
        "#     - cnvkit_noise_mad:",
        "#         title: 'CNVkit MAD'",
        "#         format: '{:,.3f}'",
        "#     - cnvkit_calls:",
        "#         title: 'CNV calls'",
        "#         format: '{:,.0f}'",
        "#     - cnvkit_expected:",
        "#         title: 'Expected states'",
        "#         format: '{:,.0f}'",
        "Sample\tcnvkit_sex\tcnvkit_noise_mad\tcnvkit_calls\tcnvkit_expected",
    ]
    given = [row for row in rows if row.get("sex")]  # nothing to check without a given sex
    checks = {row["id"]: sex_check(row.get("sex"), sex.get(row["id"])) for row in given}
    if given:
        header[-1:] = ["#     - cnvkit_sex_check:", "#         title: 'Sex check'",
                       header[-1] + "\tcnvkit_sex_check"]
    lines = []
    for name in [*tumours, *(name for name in checks if name not in tumours)]:
        cells = [name, sex.get(name, "Unknown"), "", "", ""]
        if name in tumours:
            cells[2:] = [f"{metrics.get(name, {}).get('mad', float('nan')):.4f}",
                         str(len(tumours[name].states.calls)),
                         str(len(tumours[name].states.expected))]
        lines.append("\t".join(cells + ([checks.get(name, "not given")] if given else [])))
    return "\n".join(header + lines) + "\n"


def owner(path: Path, names: list[str]) -> str | None:
    """The sample a per-sample file belongs to (`NAME-...`), the longest name that fits."""
    fits = [n for n in names if path.name.startswith(f"{n}-") or path.name.startswith(f"{n}.")]
    return max(fits, key=len) if fits else None


def tumours_of(args: argparse.Namespace, rows: list[dict]) -> dict[str, Tumour]:
    """Each tumour's calls, expected states and files, in the order of their names."""
    facts = {row["id"]: row for row in rows}
    found = {}
    for path in sorted(args.calls):
        name = sample_of(path, ".call.cns")
        row = facts.get(name, {})
        found[name] = Tumour(
            name, row, expected_states.states(
                path, f"{args.call_options} {row.get('call_facts') or ''}"),
            args.call_options, list(dict.fromkeys(r["chromosome"] for r in read_table(path))))
    names = list(found)
    for path in args.bintests:
        if (name := owner(path, names)) is not None:
            found[name].bintests = read_table(path)
    for path in args.genes_of_interest:
        if (name := owner(path, names)) is not None:
            found[name].genes = read_table(path)
    for path in args.scatters:
        if (name := owner(path, names)) is not None and path.name == f"{name}-scatter.png":
            found[name].scatter = path
    for path in sorted(args.panels):
        if (name := owner(path, names)) is None:
            continue
        rest = path.name.removeprefix(f"{name}-")
        if rest == "diagram.svg":
            found[name].diagram = path
        elif match := re.fullmatch(r"(chromosome|gene)-(.+)-scatter\.png", rest):
            found[name].panels.append((f"{match.group(1)} {match.group(2)}", path))
    return found


def bin_count(bin_sizes: dict | None, ratios: list[Path]) -> int | None:
    """The job's bins: from bin_sizes.json, else the lines of a tumour's .cnr."""
    if bin_sizes and bin_sizes.get("bins"):
        return sum(bin_sizes["bins"].values())
    if ratios:
        with open(ratios[0]) as handle:
            return sum(1 for _ in handle) - 1
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--sex", type=Path, required=True)
    parser.add_argument("--reference-sex", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--calls", type=Path, nargs="+", required=True)
    parser.add_argument("--samples", type=Path, help="samples.json: every sample's facts")
    parser.add_argument("--call-options", default="", metavar="CALL_CONF",
                        help="call_conf as checked (write --call-options=STRING)")
    parser.add_argument("--ratios", type=Path, nargs="*", default=[],
                        help="the tumours' .cnr (their bin count, without --bin-sizes)")
    parser.add_argument("--scatters", type=Path, nargs="*", default=[])
    parser.add_argument("--panels", type=Path, nargs="*", default=[],
                        help="S-chromosome-C-scatter.png, S-gene-G-scatter.png, S-diagram.svg")
    parser.add_argument("--genes-of-interest", type=Path, nargs="*", default=[])
    parser.add_argument("--bintests", type=Path, nargs="*", default=[])
    parser.add_argument("--controls-metrics", type=Path,
                        help="each control against a reference of the others (metrics TSV)")
    parser.add_argument("--heatmap", type=Path)
    parser.add_argument("--html", type=Path)
    parser.add_argument("--multiqc", type=Path, required=True)
    parser.add_argument("--bin-sizes", type=Path,
                        help="the regions' bin_sizes.json (bin/bin_sizes.py); none when the "
                             "job reused a reference")
    args = parser.parse_args(argv)

    sex = sexes(args.sex)
    metrics = metrics_of(args.metrics)
    rows = json.loads(args.samples.read_text()) if args.samples else []
    tumours = tumours_of(args, rows)
    args.multiqc.write_text(multiqc_table(sex, metrics, tumours, rows))
    if args.html:
        results = [line for line in args.results.read_text().splitlines() if line]
        cohort = [str(p) for p in args.metrics.parent.iterdir() if p.is_file()]  # cohort/*
        listed = sorted({*results, *cohort, str(args.sex), str(args.html)})
        bin_sizes = json.loads(args.bin_sizes.read_text()) if args.bin_sizes else None
        heatmap = args.heatmap if args.heatmap and args.heatmap.is_file() else None
        page = render(json.loads(args.job.read_text()), listed, sex,
                      reference_sexes(args.reference_sex), metrics, tumours, rows,
                      metrics_of(args.controls_metrics), bin_count(bin_sizes, args.ratios),
                      heatmap, bin_sizes)
        args.html.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
