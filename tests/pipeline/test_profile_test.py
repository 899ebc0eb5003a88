"""`nextflow run . -profile test,local` as a new user types it: the real pipeline (no -stub) on
the small cohort `make install` generates into test-data/ (scaffold/test_data.py; generated here
too when it is missing), its results verified and the planted events called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnvkit_nf.storage import manifest
from scaffold import test_data
from tests.pipeline.test_pipeline_e2e import called_copies, read_table

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_the_test_profile_runs_the_real_pipeline(nextflow_bin, tmp_path):
    test_data.ensure()
    env = {**os.environ, "NXF_OFFLINE": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([nextflow_bin, "run", str(ROOT), "-profile", "test,local",
                           "-ansi-log", "false", "--output_dir", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    assert manifest.verify(out) == []
    ran = [row["process"].split(":")[-1] for row in read_table(out / "pipeline_info" / "trace.tsv")]
    assert "CHECK_INPUTS" in ran and "RESULT_MANIFEST" in ran
    (son,) = [spec for spec in test_data.samples() if not spec.control]
    calls = out / "samples" / son.name / f"{son.name}.call.cns"
    assert son.events, "the test data must plant events"
    for event in son.events:
        assert called_copies(calls, event.chrom, event.start, event.end) == {event.copies}, event
    assert (out / "samples" / son.name / f"{son.name}-scatter.png").stat().st_size > 0
