"""`-profile local` explains itself: run without the venv on PATH, the job stops at
CHECK_INPUTS with one line naming what is missing and the fix, not a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

REQUIRE = ROOT / "bin" / "require_tools"
FIX = "put the cnvkit-nf venv on PATH (source .venv/bin/activate"


def require(path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", str(REQUIRE), *args], capture_output=True, text=True,
                          env={**os.environ, "PATH": path, "CONDA_PREFIX": ""})


def test_every_missing_tool_is_named_on_one_line(tmp_path):
    venv = Path(sys.executable).parent
    assert require(f"{venv}{os.pathsep}{os.environ['PATH']}", "--host").returncode == 0
    nothing = require(str(tmp_path), "--host")
    assert nothing.returncode == 127 and nothing.stdout == ""
    assert nothing.stderr.count("\n") == 1 and FIX in nothing.stderr
    assert ("missing from this task's PATH: CNVkit (cnvkit.py, and python3 that imports "
            "cnvlib), samtools, R with DNAcopy (Rscript).") in nothing.stderr
    # in a container or conda environment samtools is not CNVkit's task's to have
    assert "samtools" not in require(str(tmp_path)).stderr


@pytest.mark.e2e
def test_nextflow_run_without_the_venv_stops_at_the_check_with_one_line(nextflow_bin,
                                                                          tmp_path):
    system = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                             if Path(p).resolve() != Path(sys.executable).parent.resolve())
    done = subprocess.run([nextflow_bin, "run", str(ROOT / "main.nf"), "-profile",
                           "test_stub,local", "-stub", "--output_dir", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NXF_OFFLINE": "true", "PATH": system})
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "CHECK_INPUTS" in said and "Command exit status:\n  127" in said, said
    assert "missing from this task's PATH: CNVkit" in said and FIX in said
    assert "Traceback" not in said and "ModuleNotFoundError" not in said
