"""Running the pipeline on an assay's cohort straight with `nextflow run` (tests/pipeline).

TEMPORARY STAND-IN (issue 25): until the contract helper's branch lands (checked_options uses
its stage_options(checked, method, autobin) once bin/cnvkit_options.py has it), the checked
options of the interface (`stage_options(checked, method, autobin)` with the bin-size plan of
target_conf and antitarget_conf) are made here, in `checked_options`, and the runs pass them
as params.checked_options with inputs_checked (the launcher's way), so that CHECK_INPUTS (whose
--method/--access-bed/--exclude flags the contract adds) is not needed. Once
bin/cnvkit_options.py has the plan, `checked_options` should call it instead.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
if str(BIN) not in sys.path:
    sys.path.insert(0, str(BIN))

import cnvkit_options  # noqa: E402
from reference_record import size_option  # noqa: E402

WGS_DEFAULT = 5000


def checked_options(request: dict) -> dict:
    """{FIELD: {"args", "processes"}} of the request's ten *_conf strings, target_conf's and
    antitarget_conf's with the bin-size plan ("size", "size_from", "split") of the interface."""
    checked, problems = cnvkit_options.check_all(request)
    errors = [p for p in problems if p.severity == "error"]
    assert not errors, errors
    if "method" in inspect.signature(cnvkit_options.stage_options).parameters:  # the contract's
        return cnvkit_options.stage_options(checked, request.get("method", "hybrid"),
                                            request.get("autobin"))
    options = cnvkit_options.stage_options(checked)
    options["access_conf"] = {"args": request.get("access_conf", ""), "processes": None}
    method = request.get("method", "hybrid")
    autobin = request.get("autobin")
    autobin = method == "wgs" if autobin is None else autobin
    size, _ = size_option("target_conf", request.get("target_conf", ""))
    if size is not None:
        target = {"size": size, "size_from": "target_conf"}
    elif autobin:
        target = {"size": None, "size_from": "autobin"}
    elif method == "wgs":
        target = {"size": WGS_DEFAULT, "size_from": "wgs default"}
    else:
        target = {"size": None, "size_from": "cnvkit default"}
    options["target_conf"] |= target | {"split": autobin or method == "wgs"}
    size, _ = size_option("antitarget_conf", request.get("antitarget_conf", ""))
    if method != "hybrid":
        anti = {"size": None, "size_from": "none"}
    elif size is not None:
        anti = {"size": size, "size_from": "antitarget_conf"}
    elif autobin:
        anti = {"size": None, "size_from": "autobin"}
    else:
        anti = {"size": None, "size_from": "cnvkit default"}
    options["antitarget_conf"] |= anti | {"split": False}
    return options


def pipeline(work: Path) -> Path:
    """The pipeline to run: this checkout, or (STAND-IN, until the contract helper regenerates
    nextflow_schema.json with "bed required unless method is wgs") a copy of it whose schema
    does not require bed."""
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    inputs = schema["$defs"]["input_options"]
    if "bed" not in (inputs.get("required") or []):
        return ROOT
    copy = work / "pipeline"
    if not copy.exists():
        copy.mkdir(parents=True)
        for name in ("main.nf", "nextflow.config", "workflows", "modules", "conf", "bin",
                     "assets"):
            (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, copy / name)
        inputs["required"] = [name for name in inputs["required"] if name != "bed"]
        (copy / "nextflow_schema.json").write_text(json.dumps(schema, indent=2))
    return copy


def run(nextflow: str, cohort, work: Path, **request) -> dict:
    """`nextflow run main.nf` on the cohort (its samples as rows) with the request's fields as
    params; returns {"result", "out", "params"}."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results"
    body = cohort.request(out, **request)
    ids = [row["id"] for row in body["samples"]]
    params = {**body,
              "inputs_checked": True,
              "indexes": {"fai": True, "bai": dict.fromkeys(ids, ".bam.bai")},
              "checked_options": checked_options(body)}
    (work / "params.json").write_text(json.dumps(params, indent=2))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # CNVkit's Python
    result = subprocess.run(
        [nextflow, "run", str(pipeline(work) / "main.nf"), "-params-file",
         str(work / "params.json"), "-profile", "local", "-ansi-log", "false"],
        cwd=work, capture_output=True, text=True, env={**os.environ, "PATH": path})
    return {"result": result, "out": out, "params": params, "work": work}
