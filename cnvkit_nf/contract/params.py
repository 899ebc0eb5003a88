"""Convert a validated request into the Nextflow params of main.nf (see nextflow_schema.json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnvkit_nf.contract.confs import stage_options
from cnvkit_nf.contract.model import EXCLUDE_FIELD, GENES_FIELD, ROLES, Request, Sample
from cnvkit_nf.contract.paths import Location
from cnvkit_nf.contract.problems import Problem


class ParamsError(Exception):
    """The request cannot be run here; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def row(sample: Sample, local: Callable[[str, Location], str]) -> dict:
    """A sample as a row of params.samples: its id filled in, its files as `local` gives them
    (what main.nf reads as the sample's meta and BAM); a fact not given is left out, as the
    params schema's row has no nulls."""
    values = {"id": sample.id, "bam": local(sample.field, sample.location),
              "role": sample.role, "sex": sample.sex, "purity": sample.purity,
              "ploidy": sample.ploidy,
              "vcf": local(sample.vcf_field, sample.vcf) if sample.vcf is not None else None,
              "vcf_sample": sample.vcf_sample, "normal": sample.normal}
    return {key: value for key, value in values.items() if value is not None}


def to_params(request: Request, *, base: Path | None = None,
              staged: dict[str, Path] | None = None) -> dict:
    """Nextflow params for a request that passed `request.validate_request`.

    Paths in `staged` are replaced by their local copies there (object-storage URIs by their
    downloads, local inputs by their private copies, `output_dir` by the folder the results
    are collected in); other local paths are made absolute against `base` (default: the
    current directory). The seed's lists stay lists; rows (`samples` or a samplesheet's)
    become `samples`, with `reference_mode` and `pool_matched_normals` (written for the lists
    only when the request gives them, so a seed request's params are as they were). Each
    `*_conf` becomes its validated, re-quoted option string (a
    -p/--processes last); `checked_options` holds what the pipeline's input check makes of
    them (with target's and antitarget's bin-size plan), which a job whose launcher checked
    them passes with `inputs_checked`. `method` is always written (default hybrid), `autobin`
    only when the request gives it, `access_bed`, `access_exclude` and `genes_of_interest`
    when given.
    """
    base = base or Path.cwd()
    staged = staged or {}
    problems: list[Problem] = []

    def local(field: str, location: Location) -> str:
        if location.raw in staged:
            return str(staged[location.raw])
        if not location.is_remote:
            return str((base / location.local_path()).absolute())
        problems.append(Problem(field, f"{location.scheme}:// paths are only used through "
                                       "object storage staging (cnvkit-nf run)"))
        return location.raw

    if request.way == "lists":
        params: dict = {field: [local(sample.field, sample.location)
                                for sample in request.of_role(role)]
                        for field, role in ROLES.items()}
    elif not request.samples:
        raise ParamsError([Problem("samplesheet", "its rows were not read: validate the "
                                                  "request with the sheet's text")])
    else:
        params = {"samples": [row(sample, local) for sample in request.samples]}
    if request.way != "lists" or {"reference_mode", "pool_matched_normals"} & request.raw.keys():
        params["reference_mode"] = request.reference_mode
        params["pool_matched_normals"] = request.pool_matched_normals
    paths = {"ref": request.ref, "bed": request.bed,  # left out: the pipeline's default (null)
             "annotation_file": request.annotation_file if request.has_annotate else None,
             "reference_cnn": request.reference_cnn, "output_dir": request.output_dir,
             "access_bed": request.access_bed}
    params |= {field: local(field, location) for field, location in paths.items()
               if location is not None}
    if request.access_exclude:
        params[EXCLUDE_FIELD] = [local(f"{EXCLUDE_FIELD}[{i}]", location)
                                 for i, location in enumerate(request.access_exclude)
                                 if location is not None]
    if problems:
        raise ParamsError(problems)
    params["has_annotate"] = request.has_annotate
    params["reference_only"] = request.reference_only
    params["method"] = request.method
    if request.autobin is not None:
        params["autobin"] = request.autobin
    if request.genes_of_interest:
        params[GENES_FIELD] = list(request.genes_of_interest)
    checked = stage_options(request.options, request.method, request.autobin)
    for field, option in checked.items():
        processes = f"-p {option['processes']}" if option["processes"] else ""
        params[field] = " ".join(filter(None, (option["args"], processes)))
    params["checked_options"] = checked
    return params


def pooled_controls(params: dict) -> list[dict] | None:
    """The controls whose coverage a job's params pool into its one reference, as rows (`bam`,
    and `sex` when given: the reference's -x follows the controls' given sexes); None when
    they pool none into one (a reused reference, leave-one-out). A matched normal is pooled
    unless pool_matched_normals is false."""
    if params.get("reference_cnn") or params.get("reference_mode") == "leave-one-out":
        return None
    if "samples" not in params:
        return [{"bam": bam} for bam in params["control_inputs"]]
    normals = _matched_normals(params["samples"])
    return [row for row in params["samples"] if row["role"] == "control"
            and (params.get("pool_matched_normals", True) or row["id"] not in normals)]


def reusing(params: dict, reference: str) -> dict:
    """`params` changed to call against `reference` (built from the same pooled controls): its
    pooled controls dropped, a tumour's matched normal kept out of the pool as its VCF's normal
    column."""
    if "samples" not in params:
        return {**params, "control_inputs": [], "reference_cnn": reference}
    normals = _matched_normals(params["samples"])
    rows = [row for row in params["samples"] if row["role"] != "control" or row["id"] in normals]
    return {**params, "samples": rows, "pool_matched_normals": False, "reference_cnn": reference}


def _matched_normals(rows: list[dict]) -> set[str]:
    """The ids of the controls some row names as its matched normal."""
    return {row["normal"] for row in rows if row.get("normal") is not None}
