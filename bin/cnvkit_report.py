#!/usr/bin/env python3
"""Write a job's one-page report (report.html) and its MultiQC table from the cohort's results.

Usage: cnvkit_report.py --job job.json --results results.txt --sex sex.tsv
         --reference-sex reference-sex.tsv --metrics metrics.tsv --calls S.call.cns...
         [--samples samples.json --call-options=CALL_CONF]
         [--scatters S-scatter.png... --html report.html] --multiqc cnvkit_mqc.tsv
         [--bin-sizes bin_sizes.json]

`--samples` gives every sample's facts (the workflow's rows: id, role, sex, purity, ploidy,
vcf, vcf_sample, normal, and each tumour's call_facts, the options its facts added to
call_conf): the report then checks each given sex against the one CNVkit infers (a mismatch is
a QC warning, in the page and the MultiQC table: a sample swap?) and states the assumptions
each tumour was called with (purity, ploidy, sex, centring), read from its call options by
CNVkit's own `call` parser. Else standard library only. The page is self-contained: images
are embedded, nothing is fetched. Every link is relative to the results folder.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import html
import importlib.metadata
import json
import shlex
import sys
from pathlib import Path

# Plain QC thresholds on `cnvkit.py metrics` (log2 ratios of the bins, and segment count):
# a value above its threshold is flagged in the report.
THRESHOLDS = {"stdev": 0.35, "mad": 0.3, "iqr": 0.4, "segments": 100}
GENES_SHOWN = 12
SEX_CHROMOSOMES = {"chrX", "chrY", "X", "Y"}
KNOWN_SEXES = {"Male", "Female"}  # `cnvkit.py sex` says Unknown without usable chrX data
# Written after the tasks: Nextflow's run records, and the manifest of the published result.
JOB_FILES = ["pipeline_info/", "manifest.json"]


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


def assumptions(row: dict, call_options: str, inferred: str | None) -> dict[str, str]:
    """What a tumour was called with, as CNVkit's `call` parser reads call_conf and then its
    facts: purity, ploidy, sex (given, or as CNVkit infers it), centring and VCF; each with
    where it comes from (the sample's row, call_conf, or CNVkit's default)."""
    from cnvlib import commands as cnvkit  # noqa: PLC0415 - CNVkit's parser, only when asked

    def parsed(*words: str) -> argparse.Namespace:
        return cnvkit.parse_args(["call", "segments.cns", *words])

    default, conf = parsed(), parsed(*shlex.split(call_options))
    args = parsed(*shlex.split(call_options), *shlex.split(row.get("call_facts") or ""))

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
    return {
        "purity": (f"{args.purity:g} ({source('purity', 'purity')})" if args.purity is not None
                   else "not given: no rescaling for purity"),
        "ploidy": f"{args.ploidy:g} ({source('ploidy', 'ploidy')})",
        "sex": (f"{args.sample_sex} ({source('sex', 'sample_sex')})" if args.sample_sex
                else f"{(inferred or 'Unknown').lower()} (inferred by CNVkit)"),
        "centring": centring,
        "variants": (f"{row['vcf']}: column {args.sample_id}"
                     + (f", normal {args.normal_id}" if args.normal_id else "")
                     if args.vcf else "none"),
    }


def metrics_of(metrics_tsv: Path) -> dict[str, dict[str, float]]:
    """`cnvkit.py metrics` per sample: stdev, mad, iqr, bivar and segment count."""
    table = {}
    for row in read_table(metrics_tsv):
        name = Path(row["sample"]).name.removesuffix(".cnr")
        table[name] = {key: float(value) for key, value in row.items() if key != "sample"}
    return table


def flags(values: dict[str, float]) -> list[str]:
    return [f"{key} {values[key]:.3g} > {limit:g}" for key, limit in THRESHOLDS.items()
            if key in values and values[key] > limit]


def calls_of(call_cns: Path) -> list[dict[str, str]]:
    """Segments whose copy number is not 2."""
    return [row for row in read_table(call_cns) if row.get("cn") not in (None, "", "2")]


def genes(cell: str) -> str:
    names = [g for g in dict.fromkeys(cell.split(",")) if g and g != "-"]
    shown = ", ".join(names[:GENES_SHOWN])
    return shown + (f" and {len(names) - GENES_SHOWN} more" if len(names) > GENES_SHOWN else "")


def note(row: dict[str, str], sex: str | None) -> str:
    """What a reviewer should know about a call on chrX or chrY."""
    if row["chromosome"] not in SEX_CHROMOSOMES:
        return ""
    if sex == "Male" and row["cn"] == "1":
        return "sex chromosome: one copy is expected in a male sample"
    return "sex chromosome"


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def link(path: str) -> str:
    return f'<a href="{html.escape(path)}">{html.escape(path)}</a>'


def table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (cells already HTML)."""
    cell = (lambda v: v) if raw else (lambda v: html.escape(str(v)))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.flag { color: #b00; font-weight: bold; }
.ok { color: #070; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
"""


def reference_origin(about: dict) -> str:
    """Where the job's reference came from: reused from the project's kept references (the
    launcher says so in the job), given as reference_cnn, or built by the job itself; then the
    launcher's warning about the kept references, if any (a damaged one it removed)."""
    reference = about.get("reference") or {}
    given = (about.get("request") or {}).get("reference_cnn")
    if reference.get("reused"):
        origin = ("The reference was <b>reused</b>: built by an earlier job of this project "
                  "from the same controls, FASTA, BED, annotation, CNVkit version and options.")
    elif given:
        origin = (f"The reference was <b>given</b> (reference_cnn {html.escape(str(given))}); "
                  "no control was processed.")
    else:
        origin = "The reference was built by this job from its controls (flat without any)."
    warning = reference.get("warning")
    return origin + (f' <span class="flag">Warning: {html.escape(str(warning))}.</span>'
                     if warning else "")


SIZE_SOURCES = {
    "target_conf": "given in target_conf", "antitarget_conf": "given in antitarget_conf",
    "autobin": "CNVkit's autobin", "wgs default": "batch's WGS default",
    "cnvkit default": "CNVkit's default (no size passed)",
}


def assay_section(bin_sizes: dict | None, request: dict) -> list[str]:
    """The method, the bin sizes the regions were made with and where they came from, and the
    warnings of bin_sizes.json (bin/bin_sizes.py); without one (a reused reference's regions),
    the method only."""
    method = (bin_sizes or {}).get("method") or request.get("method") or "hybrid"
    parts = [f"<h2>Assay and bins</h2><p>Method <b>{html.escape(str(method))}</b>"]
    if not bin_sizes:
        return [parts[0] + ": the regions are the reused reference's bins.</p>"]
    parts[0] += (", autobin " + ("on" if bin_sizes.get("autobin") else "off") + ".</p>")
    rows = []
    bins = bin_sizes.get("bins") or {}
    for kind in ("target", "antitarget"):
        entry = bin_sizes.get(kind) or {}
        if entry.get("from") == "none":
            rows.append([kind, "none", f"no {kind}s ({html.escape(str(method))})",
                         str(bins.get(kind, 0)), ""])
            continue
        size = entry.get("avg_size")
        autobin = (f"depth {entry['depth']:.2f} of {html.escape(str(entry.get('bam')))}"
                   if entry.get("depth") is not None else "")
        rows.append([kind, "CNVkit's default" if size is None else f"{size} bp",
                     html.escape(SIZE_SOURCES.get(entry.get("from"), str(entry.get("from")))),
                     str(bins.get(kind, "")), autobin])
    parts.append(table(["bins", "average size", "from", "count", "autobin"], rows, raw=True))
    for warning in bin_sizes.get("warnings") or []:
        parts.append(f'<p class="flag">Warning: {html.escape(str(warning))}.</p>')
    return parts


def render(job: dict, results: list[str], sex: dict[str, str], references: dict[str, str],
           metrics: dict[str, dict[str, float]], calls: dict[str, list[dict[str, str]]],
           scatters: dict[str, Path], rows: list[dict], call_options: str,
           bin_sizes: dict | None = None) -> str:
    about = job["job"]
    submitted = datetime.datetime.fromisoformat(about["submitted"])
    elapsed = datetime.datetime.now(submitted.tzinfo) - submitted
    versions = {"pipeline": job["pipeline"], "CNVkit": importlib.metadata.version("cnvkit"),
                "Nextflow": job["nextflow"]}
    who = (f"Job <b>{html.escape(about['instance_id'])}</b>, submitted" if "instance_id" in about
           else f"Run <b>{html.escape(about['run_name'])}</b>, started")
    summary = []
    # one reference.cnn, or each tumour its own (leave-one-out)
    reference_sex = next(iter(references.values())) if len(references) == 1 else "several"
    for name in calls:
        qc = flags(metrics.get(name, {}))
        own_reference = reference_sex_of(name, references)
        known = own_reference in KNOWN_SEXES and sex.get(name) in KNOWN_SEXES
        match = "yes" if known and sex[name] == own_reference else "no" if known else "unknown"
        summary.append([
            html.escape(name), html.escape(sex.get(name, "Unknown")),
            f'<span class="{"ok" if match == "yes" else "flag"}">{match}</span>',
            *(f"{metrics.get(name, {}).get(k, float('nan')):.3g}" for k in THRESHOLDS),
            str(len(calls[name])),
            '<span class="flag">' + html.escape("; ".join(qc)) + "</span>" if qc else
            '<span class="ok">none</span>',
        ])
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>CNVkit report: {html.escape(about.get('instance_id') or about['run_name'])}"
        f"</title><style>{STYLE}</style></head><body>",
        f"<h1>CNVkit copy-number report</h1><p>{who} {html.escape(about['submitted'])}, "
        f"report written {int(elapsed.total_seconds())} s later. "
        + ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in versions.items()) + ".</p>",
        *assay_section(bin_sizes, about.get("request") or {}),
        "<h2>Samples</h2>",
        ("<p>Leave-one-out: each sample was called against its own reference, pooled from "
         "all the other samples' coverage (reference/leave-one-out/SAMPLE.reference.cnn). "
         if reference_sex == "several" else f"<p>{reference_origin(about)} ")
        + (f"It assumes a <b>{html.escape(reference_sex.lower())}</b> sample "
           "(the sex CNVkit infers from reference.cnn). " if reference_sex in KNOWN_SEXES else
           "" if reference_sex == "several" else
           "CNVkit cannot tell which sex it assumes (no usable chrX in reference.cnn). ")
        + "Sex of each tumour is inferred from its target coverage. QC thresholds: "
        + ", ".join(f"{k} &gt; {v:g}" for k, v in THRESHOLDS.items()) + ".</p>",
        table(["sample", "sex", "matches reference", *THRESHOLDS, "calls", "QC flags"],
              summary, raw=True),
    ]
    if rows:
        checks = [[row["id"], row["role"], row.get("sex") or "", sex.get(row["id"], "not covered"),
                   sex_check(row.get("sex"), sex.get(row["id"]))] for row in rows]
        parts += [
            "<h2>Sex given and inferred</h2><p>Each given sex against the one CNVkit infers from "
            "the sample's target coverage: a mismatch is a QC warning (a sample swap?).</p>",
            table(["sample", "role", "given", "inferred", "check"],
                  [[html.escape(v) for v in check[:4]]
                   + [f'<span class="{"flag" if check[4].startswith("MISMATCH") else "ok"}">'
                      f"{html.escape(check[4])}</span>"] for check in checks], raw=True),
            "<h2>Assumptions of each call</h2>",
            table(["sample", "purity", "ploidy", "sex", "centring", "SNV VCF (BAF)"],
                  [[row["id"], *assumptions(row, call_options, sex.get(row["id"])).values()]
                   for row in rows if row["id"] in calls]),
        ]
    for name, rows in calls.items():
        parts.append(f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>")
        if rows:
            parts.append(table(
                ["chromosome", "start", "end", "cn", "log2", "probes", "genes", "note"],
                [[r["chromosome"], r["start"], r["end"], r["cn"], f"{float(r['log2']):+.2f}",
                  r.get("probes", ""), genes(r.get("gene", "")),
                  note(r, sex.get(name))]
                 for r in rows]))
        else:
            parts.append("<p>No calls: every segment has copy number 2.</p>")
        if name in scatters:
            parts.append(f"<img alt='scatter plot of {html.escape(name)}' "
                         f"src='{data_uri(scatters[name])}'>")
        else:
            parts.append("<p class='flag'>No scatter plot: CNVkit could not draw it (the "
                         "CNVKIT_SAMPLE task's log says why).</p>")
    parts += [
        "<h2>Files</h2><ul>",
        *(f"<li>{link(path)}</li>" for path in [*results, *JOB_FILES]),
        "</ul><h2>Request</h2>",
        "<pre>" + html.escape(json.dumps(about["request"], indent=2, sort_keys=True, default=str)),
        "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def multiqc_table(sex: dict[str, str], metrics: dict[str, dict[str, float]],
                  calls: dict[str, list], rows: list[dict]) -> str:
    """MultiQC custom content: a general-statistics table of sex, noise and calls; when some
    sample was given its sex, every sample's sex check too (a mismatch: a sample swap?)."""
    header = [
        "# id: 'cnvkit'",
        "# section_name: 'CNVkit'",
        "# description: 'Sex inferred by CNVkit, noise (MAD of bin log2 ratios) and calls.'",
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
        "Sample\tcnvkit_sex\tcnvkit_noise_mad\tcnvkit_calls",
    ]
    given = [row for row in rows if row.get("sex")]  # nothing to check without a given sex
    checks = {row["id"]: sex_check(row.get("sex"), sex.get(row["id"])) for row in given}
    if given:
        header[-1:] = ["#     - cnvkit_sex_check:", "#         title: 'Sex check'",
                       header[-1] + "\tcnvkit_sex_check"]
    lines = []
    for name in [*calls, *(name for name in checks if name not in calls)]:
        cells = [name, sex.get(name, "Unknown"), "", ""]
        if name in calls:
            cells[2:] = [f"{metrics.get(name, {}).get('mad', float('nan')):.4f}",
                         str(len(calls[name]))]
        lines.append("\t".join(cells + ([checks.get(name, "not given")] if given else [])))
    return "\n".join(header + lines) + "\n"


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
    parser.add_argument("--scatters", type=Path, nargs="*", default=[])
    parser.add_argument("--html", type=Path)
    parser.add_argument("--multiqc", type=Path, required=True)
    parser.add_argument("--bin-sizes", type=Path,
                        help="the regions' bin_sizes.json (bin/bin_sizes.py); none when the "
                             "job reused a reference")
    args = parser.parse_args(argv)

    sex = sexes(args.sex)
    references = reference_sexes(args.reference_sex)
    metrics = metrics_of(args.metrics)
    calls = {sample_of(path, ".call.cns"): calls_of(path) for path in sorted(args.calls)}
    rows = json.loads(args.samples.read_text()) if args.samples else []
    args.multiqc.write_text(multiqc_table(sex, metrics, calls, rows))
    if args.html:
        scatters = {sample_of(path, "-scatter.png"): path for path in args.scatters}
        results = [line for line in args.results.read_text().splitlines() if line]
        cohort = [str(p) for p in args.metrics.parent.iterdir() if p.is_file()]  # cohort/*
        listed = sorted({*results, *cohort, str(args.sex), str(args.html)})
        page = render(json.loads(args.job.read_text()), listed, sex, references, metrics,
                      calls, scatters, rows, args.call_options,
                      json.loads(args.bin_sizes.read_text()) if args.bin_sizes else None)
        args.html.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
