"""A request once parsed: its paths as locations, its samples with their ids, its flags and its
checked options. `request.validate_request` builds it, as far as the request parses; every step
after the validation reads it and parses no path again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cnvkit_nf.contract.confs import CheckedOptions
from cnvkit_nf.contract.paths import Location
from cnvkit_nf.pipeline_files import load_bin

Role = Literal["experimental", "control"]
# How a request gives its samples: the seed's two lists, `samples` rows, or a samplesheet's.
Way = Literal["lists", "samples", "samplesheet"]
# The request's fields that name one file or folder, and its lists of BAM or CRAM files with
# the role of their samples; in the order the request lists them.
PATH_FIELDS = ("output_dir", "ref", "bed", "annotation_file", "reference_cnn", "access_bed")
# The request's list of exclusion BEDs (`cnvkit.py access -x`), each named "access_exclude[i]".
EXCLUDE_FIELD = "access_exclude"
# The request's gene symbols to report and plot for every tumour, each "genes_of_interest[i]".
GENES_FIELD = "genes_of_interest"
ROLES: dict[str, Role] = {"experimental_inputs": "experimental", "control_inputs": "control"}
INPUT_FIELDS = tuple(ROLES)


@dataclass(frozen=True)
class Sample:
    """One BAM or CRAM file of the request, the sample it holds and what the request says of
    it (None: not given; the seed's two lists give only the files)."""

    id: str | None  # as given, else its file name up to the first '.'; None: a refused name
    role: Role
    location: Location
    field: str  # where the request names its BAM: "control_inputs[1]", "samples[2].bam",
    #             "samplesheet line 4, column bam"
    sex: str | None = None  # "male" | "female"
    purity: float | None = None
    ploidy: int | None = None
    vcf: Location | None = None
    vcf_field: str | None = None  # where the request names its VCF, as `field`
    vcf_sample: str | None = None  # its column in its VCF, as given
    normal: str | None = None  # the id of its matched normal (a control sample)


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
    samples: tuple[Sample, ...]  # in the request's order: the lists' (experimental ones,
    #                               then controls), or the rows'
    has_annotate: bool
    reference_only: bool
    options: dict[str, CheckedOptions]  # each *_conf as CNVkit's parsers read it
    way: Way = "lists"
    samplesheet: Location | None = None  # the sheet the rows came from (the caller read it)
    sheet_text: str | None = None  # its text as read: a job keeps it, so its rows stay the same
    reference_mode: str = "pooled"  # or "leave-one-out"
    pool_matched_normals: bool = True
    method: str = "hybrid"  # the assay: "hybrid" | "amplicon" | "wgs" (`cnvkit.py batch -m`)
    autobin: bool | None = None  # as given; None: not given (`confs.autobin_applies`)
    access_bed: Location | None = None  # a precomputed access BED, instead of running access
    # exclusion BEDs (`access -x`) in the request's order; None where one does not parse
    access_exclude: tuple[Location | None, ...] = ()
    genes_of_interest: tuple[str, ...] = ()  # the symbols the schema accepts, in its order

    def vcf_columns(self, sample: Sample) -> list[str]:
        """The columns `sample`'s VCF must have: its own (its vcf_sample, else its id), then
        its matched normal's; none without a VCF (`bin/sample_rows.py`'s rule)."""
        return load_bin("sample_rows").vcf_columns(vars(sample), [vars(s) for s in self.samples])

    def of_role(self, role: Role) -> list[Sample]:
        """The experimental or the control samples, in the request's order."""
        return [sample for sample in self.samples if sample.role == role]

    def paths(self) -> list[tuple[str, Location]]:
        """(field, location) of every path that parsed, in the request's order: its fields'
        (the samplesheet's too, then each exclusion BED's), then each sample's BAM, then
        their VCFs."""
        named = [(name, getattr(self, name)) for name in (*PATH_FIELDS, "samplesheet")]
        named += [(f"{EXCLUDE_FIELD}[{i}]", location)
                  for i, location in enumerate(self.access_exclude) if location is not None]
        files = [(s.field, s.location) for s in self.samples] + [
            (s.vcf_field, s.vcf) for s in self.samples if s.vcf is not None]
        return [(name, location) for name, location in named if location is not None] + files

    def inputs(self) -> list[tuple[str, Location]]:
        """(field, location) of every file the job reads: the annotation only if used; not
        the samplesheet (its rows were read into the samples)."""
        return [(name, location) for name, location in self.paths()
                if name not in ("output_dir", "samplesheet")
                and (name != "annotation_file" or self.has_annotate)]
