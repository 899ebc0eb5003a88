#!/usr/bin/env python3
"""Write a job's one-page report (report.html) and its MultiQC table from the cohort's results.

Usage: cnvkit_report.py --job job.json --results results.txt --sex sex.tsv
         --reference-sex reference-sex.tsv --metrics metrics.tsv --calls S.call.cns...
         [--scatters S-scatter.png... --html report.html] --multiqc cnvkit_mqc.tsv

Standard library only, so it runs wherever the CNVkit stages run. The page is self-contained:
images are embedded, nothing is fetched. Every link is relative to the results folder.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import html
import importlib.metadata
import json
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


def render(job: dict, results: list[str], sex: dict[str, str], reference_sex: str,
           metrics: dict[str, dict[str, float]], calls: dict[str, list[dict[str, str]]],
           scatters: dict[str, Path]) -> str:
    about = job["job"]
    submitted = datetime.datetime.fromisoformat(about["submitted"])
    elapsed = datetime.datetime.now(submitted.tzinfo) - submitted
    versions = {"pipeline": job["pipeline"], "CNVkit": importlib.metadata.version("cnvkit"),
                "Nextflow": job["nextflow"]}
    who = (f"Job <b>{html.escape(about['instance_id'])}</b>, submitted" if "instance_id" in about
           else f"Run <b>{html.escape(about['run_name'])}</b>, started")
    summary = []
    for name in calls:
        qc = flags(metrics.get(name, {}))
        known = reference_sex in KNOWN_SEXES and sex.get(name) in KNOWN_SEXES
        match = "yes" if known and sex[name] == reference_sex else "no" if known else "unknown"
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
        "<h2>Samples</h2>",
        f"<p>{reference_origin(about)} "
        + (f"It assumes a <b>{html.escape(reference_sex.lower())}</b> sample "
           "(the sex CNVkit infers from reference.cnn). " if reference_sex in KNOWN_SEXES else
           "CNVkit cannot tell which sex it assumes (no usable chrX in reference.cnn). ")
        + "Sex of each tumour is inferred from its target coverage. QC thresholds: "
        + ", ".join(f"{k} &gt; {v:g}" for k, v in THRESHOLDS.items()) + ".</p>",
        table(["sample", "sex", "matches reference", *THRESHOLDS, "calls", "QC flags"],
              summary, raw=True),
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
                  calls: dict[str, list]) -> str:
    """MultiQC custom content: a general-statistics table of sex, noise and calls."""
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
    rows = [f"{name}\t{sex.get(name, 'Unknown')}\t"
            f"{metrics.get(name, {}).get('mad', float('nan')):.4f}\t{len(found)}"
            for name, found in calls.items()]
    return "\n".join(header + rows) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--sex", type=Path, required=True)
    parser.add_argument("--reference-sex", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--calls", type=Path, nargs="+", required=True)
    parser.add_argument("--scatters", type=Path, nargs="*", default=[])
    parser.add_argument("--html", type=Path)
    parser.add_argument("--multiqc", type=Path, required=True)
    args = parser.parse_args(argv)

    sex = sexes(args.sex)
    reference_sex = read_table(args.reference_sex)[0]["sex"]
    metrics = metrics_of(args.metrics)
    calls = {sample_of(path, ".call.cns"): calls_of(path) for path in sorted(args.calls)}
    args.multiqc.write_text(multiqc_table(sex, metrics, calls))
    if args.html:
        scatters = {sample_of(path, "-scatter.png"): path for path in args.scatters}
        results = [line for line in args.results.read_text().splitlines() if line]
        cohort = [str(p) for p in args.metrics.parent.iterdir() if p.is_file()]  # cohort/*
        listed = sorted({*results, *cohort, str(args.sex), str(args.html)})
        page = render(json.loads(args.job.read_text()), listed, sex, reference_sex, metrics,
                      calls, scatters)
        args.html.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
