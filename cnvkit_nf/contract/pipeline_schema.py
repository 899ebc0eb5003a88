"""Build `nextflow_schema.json`, the pipeline's params schema for Tower/Seqera launch forms,
and `assets/schema_samplesheet.json`, the schema of a samplesheet's rows (nf-core style: the
Platform's Datasets and nf-schema read it, and main.nf checks a sheet's rows against it).

Titles, descriptions and the rules across params come from the request schema, file-name
patterns from the request's rules, so they cannot drift apart (main.nf applies every rule of
the file, those across params too); a row of `samples` and a samplesheet's row are both made
from the request's one row definition. A test checks that the committed files are what
`python -m cnvkit_nf.contract.pipeline_schema` writes, and that nf-core's schema linter passes
nextflow_schema.json.
"""

from __future__ import annotations

import json
import re
import sys

from cnvkit_nf.contract.confs import ALLOWED_CHARS, PIPELINE_CHAR_PATTERN, SUBSTEP_OF_FIELD
from cnvkit_nf.contract.paths import NEXTFLOW_SPECIAL
from cnvkit_nf.contract.request import (
    ALIGNMENT_SUFFIXES,
    FILE_NAME_CHARS,
    SAMPLE_NAME_CHARS,
    load_schema,
)
from cnvkit_nf.pipeline_files import PIPELINE, load_bin

TARGET = PIPELINE / "nextflow_schema.json"
SAMPLESHEET_TARGET = PIPELINE / "assets" / "schema_samplesheet.json"
DOCS = "https://cnvkit.readthedocs.io/en/stable/"
# An example of each option string, and where CNVkit documents the substep.
EXAMPLES = {
    "target_conf": ("--split --avg-size 200", "pipeline.html#target"),
    "antitarget_conf": ("-a 100000 -m 10000", "pipeline.html#antitarget"),
    "coverage_conf": ("-q 10 -p 4", "pipeline.html#coverage"),
    "sex_conf": ("-y", "reports.html#sex"),
    "reference_conf": ("--no-rmask", "pipeline.html#reference"),
    "fix_conf": ("--no-rmask", "pipeline.html#fix"),
    "segment_conf": ("-m cbs --drop-low-coverage -t 0.001", "pipeline.html#segment"),
    "genemetrics_conf": ("--drop-low-coverage -t 0.2 -m 5", "reports.html#genemetrics"),
    "call_conf": ("--center median --drop-low-coverage", "pipeline.html#call"),
    "access_conf": ("-s 10000", "pipeline.html#access"),
}
# A path's folders (without what Nextflow would expand), then a file name of safe characters.
_FOLDERS = f"^(?:[^\\x00\\n\\r{re.escape(NEXTFLOW_SPECIAL)}]*/)?"
FILE_PATTERN = f"{_FOLDERS}[{FILE_NAME_CHARS}]+$"
# A BAM's or CRAM's path; its one group is the sample name (main.nf names samples with it).
BAM_PATTERN = (f"{_FOLDERS}([{SAMPLE_NAME_CHARS}]+)(?:\\.[{FILE_NAME_CHARS}]*)?"
               f"(?:{'|'.join(re.escape(s) for s in ALIGNMENT_SUFFIXES)})$")
# A sample row's BAM or CRAM: its sample name may come from the row's id instead.
ROW_BAM_PATTERN = (f"{_FOLDERS}[{FILE_NAME_CHARS}]+"
                   f"(?:{'|'.join(re.escape(s) for s in ALIGNMENT_SUFFIXES)})$")
_ROW = load_schema()["$defs"]["sample"]
VCF_PATTERN = f"{_FOLDERS}[{FILE_NAME_CHARS}]+{_ROW['properties']['vcf']['pattern'][:-1]}$"
SHEET_PATTERN = (f"{_FOLDERS}[{FILE_NAME_CHARS}]+"
                 f"{load_schema()['properties']['samplesheet']['pattern'][:-1]}$")
# A samplesheet's column for a row's `id` (nf-core's name).
SHEET_ID = "sample"
# A reused reference: a file name of safe characters ending as the request's rule says (.cnn).
_CNN_END = load_schema()["properties"]["reference_cnn"]["pattern"]
CNN_PATTERN = f"{_FOLDERS}[{FILE_NAME_CHARS}]+{_CNN_END}"
# An accessible-regions or exclusion BED: a file name of safe characters ending in .bed.
_BED_END = load_schema()["properties"]["access_bed"]["pattern"]
ACCESS_BED_PATTERN = f"{_FOLDERS}[{FILE_NAME_CHARS}]+{_BED_END}"
# The launcher's params: the check's results come with the flag that skips the check.
LAUNCHER_RULES = [
    {"if": {"properties": {"inputs_checked": {"const": True}}, "required": ["inputs_checked"]},
     "then": {"required": ["indexes", "checked_options"],
              "errorMessage": "required when inputs_checked is true (the launcher's check)"}},
]


def manifest(key: str) -> str:
    """A value of nextflow.config's manifest block: `name` (owner/name), `description`."""
    block = re.search(r"^manifest \{(.*?)^\}", (PIPELINE / "nextflow.config").read_text(),
                      re.M | re.S).group(1)
    return re.search(rf"^\s*{key}\s*=\s*'([^']*)'", block, re.M).group(1)


def _from_request(name: str, **extra) -> dict:
    """A request property as a pipeline param: same title/description, plain types."""
    prop = load_schema()["properties"][name]
    return {"title": prop["title"], "description": prop["description"], **extra}


_SPECIAL = " ".join(NEXTFLOW_SPECIAL)
FILE_RULE = ("file name may only contain letters, digits and _ . + -, and the path none of "
             f"{_SPECIAL} (Nextflow would expand them)")
BAM_RULE = ("must be a BAM (.bam) or CRAM (.cram) file whose name starts with its sample "
            "name of letters, digits, _ and - (up to the first '.'), in a path without "
            f"{_SPECIAL}")
CNN_RULE = f"must be a CNVkit reference (.cnn); {FILE_RULE}"
ROW_BAM_RULE = f"must be a BAM (.bam) or CRAM (.cram) file; {FILE_RULE}"
VCF_RULE = f"must be a VCF file (.vcf or .vcf.gz); {FILE_RULE}"
SHEET_RULE = f"must be a CSV (.csv) or TSV (.tsv) file; {FILE_RULE}"
BED_RULE = f"must be a BED file (.bed); {FILE_RULE}"


def _file(pattern: str = FILE_PATTERN, rule: str = FILE_RULE, **extra) -> dict:
    return {"type": "string", "format": "file-path", "exists": True, "pattern": pattern,
            "errorMessage": rule, **extra}


def _row(id_key: str, meta: bool = False) -> dict:
    """A sample row as the pipeline reads it: the request's row definition with its paths as
    the pipeline's file params, and its id under `id_key`; `meta` marks the columns that
    nf-schema's samplesheetToList puts into a sample's meta map (the files come after it)."""
    files = {"bam": _file(ROW_BAM_PATTERN, ROW_BAM_RULE),
             "vcf": _file(VCF_PATTERN, VCF_RULE, mimetype="text/plain")}
    properties = {}
    for name, rule in _ROW["properties"].items():
        plain = {k: v for k, v in rule.items() if k not in ("$ref", "pattern", "errorMessage")}
        own = ({**plain, **files[name]} if name in files
               else {**rule, **({"meta": [name]} if meta else {})})
        properties[id_key if name == "id" else name] = own
    return {"type": "object", "required": _ROW["required"], "additionalProperties": False,
            "properties": properties, "allOf": _ROW["allOf"]}


def samplesheet_schema() -> dict:
    """The schema of a samplesheet (nf-core style: an array of its rows)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://raw.githubusercontent.com/{manifest('name')}/main/"
               "assets/schema_samplesheet.json",
        "title": f"{manifest('name')} samplesheet",
        "description": load_schema()["properties"]["samplesheet"]["description"],
        "type": "array",
        "items": _row(SHEET_ID, meta=True),
    }


def _option(field: str) -> dict:
    """A substep's option string: its pattern, and help with an example and CNVkit's docs."""
    example, page = EXAMPLES[field]
    substep = SUBSTEP_OF_FIELD[field]
    return _from_request(
        field, type="string", pattern=f"^{PIPELINE_CHAR_PATTERN}$", fa_icon="fas fa-terminal",
        errorMessage=f"only {ALLOWED_CHARS} and spaces are allowed",
        help_text=f"Options of `cnvkit.py {substep}`, as on its command line, for example "
                  f"`{example}`. CNVkit's own parser checks it before any work starts; inputs "
                  f"and outputs are the pipeline's own and are refused. See {DOCS}{page}.")


def build() -> dict:
    """The params schema (JSON Schema draft 2020-12 with nf-core style `$defs` groups)."""
    inputs = {
        "experimental_inputs": _from_request(  # how many: the request's rules (allOf)
            "experimental_inputs", type="array", fa_icon="fas fa-vial",
            items=_file(BAM_PATTERN, BAM_RULE)),
        "control_inputs": _from_request("control_inputs", type="array", fa_icon="fas fa-vials",
                                        items=_file(BAM_PATTERN, BAM_RULE)),
        "ref": _from_request("ref", **_file(fa_icon="fas fa-dna", mimetype="text/x-fasta")),
        "bed": _from_request("bed", **_file(fa_icon="fas fa-bullseye", mimetype="text/plain")),
        "has_annotate": _from_request("has_annotate", type="boolean", fa_icon="fas fa-tags"),
        "annotation_file": _from_request("annotation_file", **_file(fa_icon="fas fa-tags",
                                                                    mimetype="text/plain")),
        "reference_cnn": _from_request("reference_cnn", **_file(
            CNN_PATTERN, CNN_RULE, fa_icon="fas fa-recycle", mimetype="text/tab-separated-values",
            **{"x-record": load_bin("reference_record").RECORD_OF_REFERENCE})),
        "samples": _from_request("samples", type="array", fa_icon="fas fa-table-list",
                                 items=_row("id")),
        "samplesheet": _from_request("samplesheet", **_file(
            SHEET_PATTERN, SHEET_RULE, fa_icon="fas fa-file-csv", mimetype="text/csv",
            schema=str(SAMPLESHEET_TARGET.relative_to(PIPELINE)))),
        "reference_only": _from_request("reference_only", type="boolean",
                                        fa_icon="fas fa-hammer"),
        "reference_mode": _from_request("reference_mode", type="string", default="pooled",
                                        enum=load_schema()["properties"]["reference_mode"]["enum"],
                                        fa_icon="fas fa-people-group"),
        "pool_matched_normals": _from_request("pool_matched_normals", type="boolean",
                                              default=True, fa_icon="fas fa-user-group"),
        "method": _from_request("method", type="string", default="hybrid",
                                enum=load_schema()["properties"]["method"]["enum"],
                                errorMessage=load_schema()["properties"]["method"]["errorMessage"],
                                fa_icon="fas fa-flask"),
        "autobin": _from_request("autobin", type="boolean", fa_icon="fas fa-ruler-horizontal"),
        "access_bed": _from_request("access_bed", **_file(
            ACCESS_BED_PATTERN, BED_RULE, fa_icon="fas fa-road", mimetype="text/plain")),
        "access_exclude": _from_request(
            "access_exclude", type="array", fa_icon="fas fa-ban",
            maxItems=load_schema()["properties"]["access_exclude"]["maxItems"],
            items=_file(ACCESS_BED_PATTERN, BED_RULE, mimetype="text/plain")),
    }
    output = {
        "output_dir": _from_request("output_dir", type="string", format="directory-path",
                                    fa_icon="fas fa-folder-open"),
        "publish_dir_mode": {
            "title": "Publish mode", "type": "string", "default": "copy", "hidden": True,
            "fa_icon": "fas fa-copy",
            "description": "How results are placed into output_dir: copied, or hard-linked "
                           "(same filesystem only). Not symbolic links: a result must not "
                           "depend on the work directory, and its manifest lists files.",
            "enum": ["copy", "copyNoFollow", "link"],
        },
        "plots": {
            "title": "Plots and report", "type": "boolean", "default": True,
            "fa_icon": "fas fa-chart-area",
            "description": "Per tumour scatter plots (PNG: the genome, each chromosome and each "
                           "gene of interest with a call) and a diagram (PDF and SVG), a heatmap "
                           "of two or more tumours, and report.html; false skips them.",
        },
        "genes_of_interest": _from_request(
            "genes_of_interest", type="array", fa_icon="fas fa-dna",
            **{key: load_schema()["properties"]["genes_of_interest"][key]
               for key in ("maxItems", "uniqueItems", "items")}),
    }
    options = {field: _option(field) for field in SUBSTEP_OF_FIELD}
    resources = {
        "max_cpus": {"title": "Max CPUs", "type": "integer", "minimum": 1, "default": 16,
                     "hidden": True, "fa_icon": "fas fa-microchip",
                     "description": "Largest CPU request of one task; larger ones are capped "
                                    "(the local profile also caps it at the CPUs of the "
                                    "machine running Nextflow)."},
        "max_memory": {"title": "Max memory", "type": "string", "default": "64.GB",
                       "hidden": True, "fa_icon": "fas fa-memory",
                       "pattern": r"^\d+(\.\d+)?\.?\s*(K|M|G|T)?B$",
                       "description": "Largest memory request of one task."},
        "max_time": {"title": "Max time", "type": "string", "default": "48.h",
                     "hidden": True, "fa_icon": "far fa-clock",
                     "pattern": r"^(\d+\.?\s*(s|m|h|d)\s*)+$",
                     "description": "Largest time request of one task."},
        "coverage_chunk_bins": {
            "title": "Coverage chunk size", "type": "integer", "minimum": 1, "default": 100000,
            "hidden": True, "fa_icon": "fas fa-layer-group",
            "description": "A job with more bins (target + antitarget) than this has its "
                           "coverage run as one task per sample and group of whole chromosomes "
                           "(about this many bins each), merged per sample into the files one "
                           "task writes."},
        "group_stages": {
            "title": "Group small jobs' stages", "type": "boolean", "default": True,
            "hidden": True, "fa_icon": "fas fa-object-group",
            "description": "On the local executor, run the coverage of each role's samples in "
                           "one task and every tumour's calls in one, each sample beside the "
                           "others in one CNVkit interpreter; false: one task per sample, as on "
                           "a cluster. Coverage in chunks keeps a task per sample and chunk."},
    }
    launcher = {
        "inputs_checked": {"title": "Inputs checked", "type": "boolean", "hidden": True,
                           "fa_icon": "fas fa-check",
                           "description": "Set by cnvkit-nf when it has checked the inputs' "
                                          "content already: the pipeline's first task "
                                          "(CHECK_INPUTS) is then skipped."},
        "indexes": {"title": "Index decisions", "type": "object", "hidden": True,
                    "fa_icon": "fas fa-list-check",
                    "description": "Set by cnvkit-nf with inputs_checked: which indexes its "
                                   "input check found usable (the rest are built), as "
                                   "CHECK_INPUTS decides them otherwise."},
        "checked_options": {
            "title": "Checked option strings", "type": "object", "hidden": True,
            "fa_icon": "fas fa-list-check",
            "description": "Written by cnvkit-nf, used with inputs_checked: each option "
                           "string as its check re-quoted it, and its -p (`{FIELD: {args, "
                           "processes}}`), as CHECK_INPUTS makes them otherwise."},
        "job": {"title": "Job", "type": "object", "hidden": True, "fa_icon": "fas fa-id-card",
                "description": "Set by cnvkit-nf: the job's instance_id, submission time and "
                               "request as sent, shown by report.html (a direct run shows its "
                               "run name, start and params instead)."},
    }
    groups = {
        # the BAMs' params are required by the request's rules (allOf): one way of three; so
        # is the bed (unless method is wgs)
        "input_options": ("Inputs", inputs, ["ref"],
                          load_schema()["allOf"]),
        "output_options": ("Output", output, ["output_dir"], []),
        "substep_options": ("CNVkit substep options", options, [], []),
        "resource_options": ("Resources", resources, [], []),
        "launcher_options": ("Launcher", launcher, [], LAUNCHER_RULES),
    }
    # A group's rules across params are its allOf: nf-core's tools want the top-level allOf to
    # name the groups only.
    defs = {
        key: {"title": title, "type": "object", "properties": props,
              **({"required": required} if required else {}), **({"allOf": rules} if rules else {})}
        for key, (title, props, required, rules) in groups.items()
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://raw.githubusercontent.com/{manifest('name')}/main/nextflow_schema.json",
        "title": f"{manifest('name')} pipeline parameters",
        "description": manifest("description"),
        "type": "object",
        "$defs": defs,
        "allOf": [{"$ref": f"#/$defs/{key}"} for key in defs],
    }


def render(schema: dict | None = None) -> str:
    """A schema as committed (default: nextflow_schema.json's): indented JSON, final newline."""
    return json.dumps(build() if schema is None else schema, indent=2) + "\n"


if __name__ == "__main__":
    SAMPLESHEET_TARGET.parent.mkdir(exist_ok=True)
    for target, schema in ((TARGET, build()), (SAMPLESHEET_TARGET, samplesheet_schema())):
        target.write_text(render(schema))
        sys.stdout.write(f"wrote {target}\n")
