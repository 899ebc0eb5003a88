"""A request template for the BAMs of a folder (`cnvkit-nf init`): the first request a lab
writes for its own data, to edit, validate and run."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path


class TemplateError(Exception):
    """The folder or the patterns give no request; the message says why and what to do."""


def request_template(bams: Path, ref: Path, bed: Path | None, controls: tuple[str, ...] = (),
                     annotation: Path | None = None, output_dir: Path = Path("results"),
                     method: str = "hybrid") -> dict:
    """A request of every *.bam of `bams` (sorted by name): those whose file name matches a
    pattern of `controls` are the controls, the others the tumours; absolute paths."""
    found = sorted(path.resolve() for path in Path(bams).glob("*.bam") if path.is_file())
    if not found:
        raise TemplateError(f"--bams {bams}: no *.bam file in that folder")
    unmatched = [p for p in controls if not any(fnmatch(bam.name, p) for bam in found)]
    if unmatched:
        raise TemplateError(f"--control {', '.join(unmatched)}: matches none of "
                            f"{', '.join(bam.name for bam in found)}")
    control = [bam for bam in found if any(fnmatch(bam.name, p) for p in controls)]
    tumours = [bam for bam in found if bam not in control]
    if not tumours:
        raise TemplateError("every BAM matches --control: no tumour (experimental) sample left")
    if bed is None and method != "wgs":
        raise TemplateError(f"--bed is required for method {method} (only wgs goes without)")
    request = {"experimental_inputs": [str(bam) for bam in tumours],
               "control_inputs": [str(bam) for bam in control],
               "output_dir": str(Path(output_dir).resolve()),
               "ref": str(Path(ref).resolve())}
    if method != "hybrid":
        request["method"] = method
    if bed is not None:
        request["bed"] = str(Path(bed).resolve())
    if annotation is not None:
        request.update(has_annotate=True, annotation_file=str(Path(annotation).resolve()))
    return request
