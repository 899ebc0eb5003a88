"""Convert a validated request into the Nextflow params of main.nf (see nextflow_schema.json)."""

from __future__ import annotations

from pathlib import Path

from cnvkit_nf.contract.confs import CheckedOptions, stage_options
from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.problems import Problem

PATH_FIELDS = ("ref", "bed", "annotation_file", "reference_cnn", "output_dir")
LIST_FIELDS = ("experimental_inputs", "control_inputs")


class ParamsError(Exception):
    """The request cannot be run here; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def to_params(request: dict, options: dict[str, CheckedOptions], *,
              base: Path | None = None, staged: dict[str, Path] | None = None) -> dict:
    """Nextflow params for a request that passed `request.validate_request`.

    Paths in `staged` are replaced by their local copies there (object-storage URIs by their
    downloads, local inputs by their private copies, `output_dir` by the folder the results
    are collected in); other local paths are made absolute against `base` (default: the
    current directory). Each `*_conf` becomes its validated, re-quoted option string (a
    -p/--processes last); `checked_options` holds what the pipeline's input check makes of
    them, which a job whose launcher checked them passes with `inputs_checked`.
    """
    base = base or Path.cwd()
    staged = staged or {}
    problems: list[Problem] = []

    def local(field: str, value: str) -> str:
        if value in staged:
            return str(staged[value])
        location = parse_location(value)
        if not location.is_remote:
            return str((base / location.local_path()).absolute())
        problems.append(Problem(field, f"{location.scheme}:// paths are only used through "
                                       "object storage staging (cnvkit-nf run)"))
        return value

    params: dict = {}
    for field in LIST_FIELDS:
        params[field] = [local(f"{field}[{i}]", value)
                         for i, value in enumerate(request.get(field) or [])]
    for field in PATH_FIELDS:
        if (field == "annotation_file" and not request.get("has_annotate")) or (
                field == "reference_cnn" and "reference_cnn" not in request):
            continue  # left out: the pipeline's default (null)
        params[field] = local(field, request[field])
    if problems:
        raise ParamsError(problems)
    params["has_annotate"] = bool(request.get("has_annotate"))
    params["reference_only"] = bool(request.get("reference_only"))
    checked = stage_options(options)
    for field, option in checked.items():
        processes = f"-p {option['processes']}" if option["processes"] else ""
        params[field] = " ".join(filter(None, (option["args"], processes)))
    params["checked_options"] = checked
    return params

