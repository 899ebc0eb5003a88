"""bin/cnvkit_stage.py: a stage's CNVkit command lines in one interpreter, each as cnvkit.py
runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "bin" / "cnvkit_stage.py"
CNVKIT = Path(sys.executable).with_name("cnvkit.py")


def stage(lines: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGE)], input=lines, capture_output=True,
                          text=True, cwd=cwd)


def test_lines_give_what_cnvkit_py_gives_one_by_one(small_cohort, tmp_path):
    ref, bed = small_cohort.ref, small_cohort.bed
    lines = (f"cnvkit.py access {ref} -o access.bed\n"
             "# a comment, and a blank line, are skipped\n\n"
             f"cnvkit.py target {bed} --split -o targets.bed\n"
             "cnvkit.py antitarget targets.bed -g access.bed -a 100000 -o antitargets.bed\n")
    done = stage(lines, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"$ cnvkit.py target {bed} --split -o targets.bed" in done.stderr  # each line shown
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    for line in lines.splitlines():
        if line.startswith("cnvkit.py"):
            subprocess.run([str(CNVKIT), *line.split()[1:]], cwd=by_hand, check=True,
                           capture_output=True)
    for name in ("access.bed", "targets.bed", "antitargets.bed"):
        assert (tmp_path / name).read_bytes() == (by_hand / name).read_bytes(), name


def test_the_first_failing_line_ends_the_stage(small_cohort, tmp_path):
    refused = stage(f"cnvkit.py target {small_cohort.bed} --frobnicate -o t.bed\n"
                    f"cnvkit.py target {small_cohort.bed} -o later.bed\n", tmp_path)
    assert refused.returncode == 2 and "unrecognized arguments: --frobnicate" in refused.stderr
    failed = stage(f"cnvkit.py target {tmp_path / 'missing.bed'} -o t.bed\n"
                   f"cnvkit.py target {small_cohort.bed} -o later.bed\n", tmp_path)
    assert failed.returncode == 1 and "missing.bed" in failed.stderr
    assert not (tmp_path / "later.bed").exists()


def test_only_cnvkit_lines_are_run(tmp_path):
    done = stage("cnvkit.py version\nrm -rf /tmp/x\n", tmp_path)
    assert done.returncode == 2
    assert "not a cnvkit.py command line: rm -rf /tmp/x" in done.stderr
    assert "$ cnvkit.py version" not in done.stderr  # nothing ran
