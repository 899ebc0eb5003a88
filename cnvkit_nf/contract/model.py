"""A request once parsed: its paths as locations, its samples with their ids, its flags and its
checked options. `request.validate_request` builds it, as far as the request parses; every step
after the validation reads it and parses no path again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cnvkit_nf.contract.confs import CheckedOptions
from cnvkit_nf.contract.paths import Location

Role = Literal["experimental", "control"]
# The request's fields that name one file or folder, and its lists of BAM or CRAM files with
# the role of their samples; in the order the request lists them.
PATH_FIELDS = ("output_dir", "ref", "bed", "annotation_file", "reference_cnn")
ROLES: dict[str, Role] = {"experimental_inputs": "experimental", "control_inputs": "control"}
INPUT_FIELDS = tuple(ROLES)


@dataclass(frozen=True)
class Sample:
    """One BAM or CRAM file of the request and the sample it holds."""

    id: str | None  # its file name up to the first '.'; None only in a refused request
    role: Role
    location: Location
    field: str  # where the request names it: "control_inputs[1]"


@dataclass(frozen=True)
class Request:
    """A request as the validation parsed it. A path that is not a string or does not parse
    is None (or, for a sample, left out): the validation reports it, so a valid request has
    every path it needs."""

    raw: dict[str, Any]  # as it came: job records keep it and the API echoes it
    output_dir: Location | None
    ref: Location | None
    bed: Location | None
    annotation_file: Location | None  # as given; the job reads it only with has_annotate
    reference_cnn: Location | None
    samples: tuple[Sample, ...]  # experimental ones, then controls, as the request lists them
    has_annotate: bool
    reference_only: bool
    options: dict[str, CheckedOptions]  # each *_conf as CNVkit's parsers read it

    def of_role(self, role: Role) -> list[Sample]:
        """The experimental or the control samples, in the request's order."""
        return [sample for sample in self.samples if sample.role == role]

    def paths(self) -> list[tuple[str, Location]]:
        """(field, location) of every path that parsed, in the request's order."""
        named = [(name, getattr(self, name)) for name in PATH_FIELDS]
        return [(name, location) for name, location in named if location is not None] + [
            (sample.field, sample.location) for sample in self.samples]

    def inputs(self) -> list[tuple[str, Location]]:
        """(field, location) of every file the job reads: the annotation only if used."""
        return [(name, location) for name, location in self.paths() if name != "output_dir"
                and (name != "annotation_file" or self.has_annotate)]
