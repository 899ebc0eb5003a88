"""Build `nextflow_schema.json`, the pipeline's params schema for Tower/Seqera launch forms.

Titles and descriptions come from the request schema, so the two cannot drift apart; a test
checks that the committed file is what `python -m cnvkit_nf.pipeline_schema` writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnvkit_nf.confs import MAX_PROCESSES, PIPELINE_CHAR_PATTERN, SUBSTEP_OF_FIELD
from cnvkit_nf.request import load_schema

TARGET = Path(__file__).resolve().parent.parent / "nextflow_schema.json"


def _from_request(name: str, **extra) -> dict:
    """A request property as a pipeline param: same title/description, plain types."""
    prop = load_schema()["properties"][name]
    return {"title": prop["title"], "description": prop["description"], **extra}


def build() -> dict:
    """The params schema (JSON Schema draft 2020-12 with nf-core style `$defs` groups)."""
    file_path = {"type": "string", "format": "file-path", "exists": True}
    inputs = {
        "experimental_inputs": _from_request(  # none for reference_only (main.nf checks)
            "experimental_inputs", type="array", items=file_path),
        "control_inputs": _from_request("control_inputs", type="array", items=file_path),
        "ref": _from_request("ref", **file_path),
        "bed": _from_request("bed", **file_path),
        "has_annotate": _from_request("has_annotate", type="boolean", default=False),
        "annotation_file": _from_request("annotation_file", **{**file_path,
                                                              "type": ["string", "null"]}),
        "reference_cnn": _from_request("reference_cnn", **{**file_path, "pattern": r"\.cnn$",
                                                          "type": ["string", "null"]}),
        "reference_only": _from_request("reference_only", type="boolean", default=False),
    }
    output = {
        "output_dir": _from_request("output_dir", type="string", format="directory-path"),
        "publish_dir_mode": {
            "title": "Publish mode", "type": "string", "default": "copy",
            "description": "How results are placed into output_dir.",
            "enum": ["copy", "copyNoFollow", "link", "rellink", "symlink", "move"],
        },
        "plots": {
            "title": "Plots and report", "type": "boolean", "default": True,
            "description": "Per tumour a scatter plot (PNG) and a diagram (PDF), a heatmap of "
                           "two or more tumours, and report.html; false skips them.",
        },
    }
    options = {
        field: _from_request(field, type="string", default="",
                             pattern=f"^{PIPELINE_CHAR_PATTERN}$")
        for field in SUBSTEP_OF_FIELD
    }
    resources = {
        "coverage_cpus": {"title": "coverage CPUs", "type": "integer", "minimum": 1,
                          "maximum": MAX_PROCESSES, "default": 1,
                          "description": "CPUs per `cnvkit.py coverage` task."},
        "segment_cpus": {"title": "segment CPUs", "type": "integer", "minimum": 1,
                         "maximum": MAX_PROCESSES, "default": 1,
                         "description": "CPUs per `cnvkit.py segment` task."},
        "max_cpus": {"title": "Max CPUs", "type": "integer", "minimum": 1,
                     "description": "Largest CPU request of one task; larger ones are capped "
                                    "(default: the CPUs of the machine running Nextflow)."},
        "max_memory": {"title": "Max memory", "type": "string", "default": "64.GB",
                       "pattern": r"^\d+(\.\d+)?\.?\s*(K|M|G|T)?B$",
                       "description": "Largest memory request of one task."},
        "max_time": {"title": "Max time", "type": "string", "default": "48.h",
                     "pattern": r"^(\d+\.?\s*(s|m|h|d)\s*)+$",
                     "description": "Largest time request of one task."},
    }
    launcher = {
        "inputs_checked": {"title": "Inputs checked", "type": "boolean", "default": False,
                           "hidden": True,
                           "description": "Set by cnvkit-nf when it has checked the inputs' "
                                          "content already: the pipeline's first task "
                                          "(CHECK_INPUTS) is then skipped."},
        "job": {"title": "Job", "type": "object", "hidden": True,
                "description": "Set by cnvkit-nf: the job's instance_id, submission time and "
                               "request as sent, shown by report.html (a direct run shows its "
                               "run name, start and params instead)."},
    }
    groups = {
        "input_options": ("Inputs", inputs, ["experimental_inputs", "control_inputs", "ref",
                                             "bed"]),
        "output_options": ("Output", output, ["output_dir"]),
        "substep_options": ("CNVkit substep options", options, []),
        "resource_options": ("Resources", resources, []),
        "launcher_options": ("Launcher", launcher, []),
    }
    defs = {
        key: {"title": title, "type": "object", "properties": props,
              **({"required": required} if required else {})}
        for key, (title, props, required) in groups.items()
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cnvkit-nf.example/nextflow_schema.json",
        "title": "cnvkit-nf pipeline parameters",
        "description": load_schema()["description"],
        "type": "object",
        "$defs": defs,
        "allOf": [{"$ref": f"#/$defs/{key}"} for key in defs],
    }


def render() -> str:
    """The schema as committed: indented JSON with a final newline."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
