"""QC of a job's samples for the report: limits that name their source, and flags relative to
the cohort.

Each sample is judged on `cnvkit.py metrics` (stdev, mad, iqr of the bin log2 ratios around
their segments; the segment count) twice:
- against limits. The noise limits come from the job's own panel when it has one (twice the
  median noise of the controls, each against a reference built from the others:
  reference/controls-metrics.tsv), else from a fixed table per assay; the segment limit grows
  with the job's bin count. A limit says where it came from. The panel's noise is read from its
  robust measures, MAD (for stdev and mad: both estimate the standard deviation of normal
  noise) and IQR: a control's stdev swings with a few far bins, such as a female's chrY
  against a reference of male controls.
- against the cohort: a value above the median of its group (tumours, or controls) plus 3
  scaled MADs (a robust outlier rule; Leys et al. 2013 call 3 "very conservative") is an
  outlier. It needs 3 samples in the group.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

NOISE = ("stdev", "mad", "iqr")
ROBUST = ("mad", "iqr")  # what judges a control, and what a panel's limits are read from
PANEL_MEASURE = {"stdev": "mad", "mad": "mad", "iqr": "iqr"}
METRICS = (*NOISE, "segments")
# Used without a panel. CNVkit publishes no limits; these are this pipeline's rule of thumb for
# the log2 noise of a usable sample, tighter where bins hold more reads.
ASSAY_NOISE = {
    "hybrid": {"stdev": 0.35, "mad": 0.3, "iqr": 0.4},
    "amplicon": {"stdev": 0.35, "mad": 0.3, "iqr": 0.4},
    "wgs": {"stdev": 0.25, "mad": 0.2, "iqr": 0.3},
}
PANEL_FACTOR = 2.0
SEGMENTS_PER_BINS, MIN_SEGMENT_LIMIT = 1000, 100  # a segment per 1,000 bins, at least 100
OUTLIER_MADS, MIN_GROUP = 3.0, 3
SCALED_MAD = 1.4826  # MAD to a normal distribution's standard deviation


@dataclass
class Limit:
    value: float
    source: str


def limits(method: str, bins: int | None, panel: dict[str, dict[str, float]]) -> dict[str, Limit]:
    """Each metric's limit for this job, with where it comes from."""
    found = {}
    usable = [values for values in panel.values() if all(k in values for k in ROBUST)]
    for key in NOISE:
        if len(usable) >= 2:
            measure = PANEL_MEASURE[key]
            median = statistics.median(values[measure] for values in usable)
            found[key] = Limit(PANEL_FACTOR * median,
                               f"{PANEL_FACTOR:g} x the median {measure} of the {len(usable)} "
                               "controls, each against a reference of the others "
                               "(reference/controls-metrics.tsv)")
        else:
            table = ASSAY_NOISE.get(method, ASSAY_NOISE["hybrid"])
            found[key] = Limit(table[key], f"this pipeline's fixed limit for {method} assays "
                                           "(no panel of 2 or more controls to scale it by)")
    if bins:
        found["segments"] = Limit(
            max(MIN_SEGMENT_LIMIT, bins / SEGMENTS_PER_BINS),
            f"one segment per {SEGMENTS_PER_BINS:,} of the job's {bins:,} bins, at least "
            f"{MIN_SEGMENT_LIMIT}")
    else:
        found["segments"] = Limit(MIN_SEGMENT_LIMIT, "a fixed limit (bin count unknown)")
    return found


def over_limits(values: dict[str, float], found: dict[str, Limit]) -> list[str]:
    return [f"{key} {values[key]:.3g} > {limit.value:.3g}" for key, limit in found.items()
            if key in values and values[key] > limit.value]


def outliers(group: dict[str, dict[str, float]],
             metrics: tuple[str, ...] = METRICS) -> dict[str, list[str]]:
    """Per sample, the `metrics` above its group's median + 3 scaled MADs (none under 3
    samples). The spread has a floor of 5 % of the median, so near-identical samples are not
    outliers."""
    flagged: dict[str, list[str]] = {name: [] for name in group}
    if len(group) < MIN_GROUP:
        return flagged
    for key in metrics:
        values = {name: v[key] for name, v in group.items() if key in v}
        if len(values) < MIN_GROUP:
            continue
        median = statistics.median(values.values())
        spread = SCALED_MAD * statistics.median(abs(v - median) for v in values.values())
        limit = median + OUTLIER_MADS * max(spread, 0.05 * abs(median))
        for name, value in values.items():
            if value > limit:
                flagged[name].append(f"{key} {value:.3g} > cohort {limit:.3g} "
                                     f"(median {median:.3g} + {OUTLIER_MADS:g} MAD)")
    return flagged


def cohort_rule(group: str) -> str:
    return (f"above the median of the job's {group} + {OUTLIER_MADS:g} scaled MADs (a robust "
            f"outlier rule; needs {MIN_GROUP} {group} or more)")
