"""bin/cnvkit_stage.py: a stage's CNVkit command lines in one interpreter, each as cnvkit.py
runs it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "bin" / "cnvkit_stage.py"
CNVKIT = Path(sys.executable).with_name("cnvkit.py")


@pytest.fixture(scope="module")
def stage_script():
    return load_script("cnvkit_stage")


def stage(lines: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGE), *args], input=lines, capture_output=True,
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
    assert ("not a cnvkit.py or reference2targets.py or cnvkit_report.py or bin_sizes.py "
            "command line: rm -rf /tmp/x") in done.stderr
    assert "$ cnvkit.py version" not in done.stderr  # nothing ran


def test_sex_word_is_calls_sex_options_as_cnvkit_reads_them(tmp_path):
    shown = stage("cnvkit.py export bed none.call.cns -i S {sex} -o s.bed\n", tmp_path,
                  "--sex-of=--center median --male-ref -x female --diploid-parx-genome grch38")
    assert ("$ cnvkit.py export bed none.call.cns -i S -y -x female --diploid-parx-genome grch38"
            " -o s.bed") in shown.stderr
    assert shown.returncode == 1  # the input is missing: the line did run
    none = stage("cnvkit.py export bed none.call.cns {sex} -o s.bed\n", tmp_path, "--sex-of=")
    assert "$ cnvkit.py export bed none.call.cns -o s.bed" in none.stderr
    unset = stage("cnvkit.py export bed none.call.cns {sex} -o s.bed\n", tmp_path)
    assert unset.returncode == 2 and "{sex} needs --sex-of" in unset.stderr
    wrong = stage("cnvkit.py export bed none.call.cns {sex} -o s.bed\n", tmp_path,
                  "--sex-of=--frobnicate")
    assert wrong.returncode == 2 and "unrecognized arguments: --frobnicate" in wrong.stderr


def test_plots_in_one_stage_equal_plots_drawn_one_by_one(tmp_path):
    """No figure of one line leaks into the next (matplotlib keeps them per process)."""
    bins = ["chromosome\tstart\tend\tgene\tlog2\tdepth\tweight"]
    for chrom, shift in (("chr1", 0.0), ("chr2", -1.0)):
        bins += [f"{chrom}\t{i * 1000}\t{i * 1000 + 500}\tg{i // 10}\t"
                 f"{shift + ((i * 37) % 11 - 5) / 20:.3f}\t100\t1" for i in range(120)]
    (tmp_path / "s.cnr").write_text("\n".join(bins) + "\n")
    (tmp_path / "s.cns").write_text(
        "chromosome\tstart\tend\tgene\tlog2\tprobes\tweight\n"
        "chr1\t0\t119500\t-\t0\t120\t120\nchr2\t0\t119500\t-\t-1\t120\t120\n")
    lines = ["cnvkit.py scatter s.cnr -s s.cns -o scatter.png",
             "cnvkit.py heatmap s.cns s.cnr -o heatmap.png",
             "cnvkit.py diagram -s s.cns -o diagram.pdf"]
    done = stage("\n".join(lines) + "\n", tmp_path)
    assert done.returncode == 0, done.stderr
    alone = tmp_path / "alone"
    alone.mkdir()
    for line in lines:
        words = [f"../{w}" if w in ("s.cnr", "s.cns") else w for w in line.split()[1:]]
        subprocess.run([str(CNVKIT), *words], cwd=alone, check=True, capture_output=True)
    for name in ("scatter.png", "heatmap.png"):
        assert (tmp_path / name).read_bytes() == (alone / name).read_bytes(), name
    assert (tmp_path / "diagram.pdf").read_bytes()[:5] == b"%PDF-"


def test_an_optional_line_may_fail_without_ending_the_stage(tmp_path, stage_script):
    (tmp_path / "empty.call.cns").write_text(
        "chromosome\tstart\tend\tgene\tlog2\tcn\tprobes\tweight\n")
    lines = ("cnvkit.py diagram -s empty.call.cns -o d.pdf\n"
             "cnvkit.py export bed empty.call.cns -i S -o s.bed\n")
    skipped = stage(lines, tmp_path, "--optional", "scatter,diagram")
    assert skipped.returncode == 0, skipped.stderr
    assert "(diagram failed, skipped: ValueError" in skipped.stderr
    assert not (tmp_path / "d.pdf").exists() and (tmp_path / "s.bed").exists()
    assert stage(lines, tmp_path).returncode == 1  # not optional: the stage ends

    def writes_then_fails(args):
        Path(args.output).write_text("half a plot")
        raise RuntimeError("drawing failed")

    half = tmp_path / "half.png"
    stage_script.run_optional(["cnvkit.py", "scatter"],
                              argparse.Namespace(output=str(half), func=writes_then_fails))
    assert not half.exists()  # nothing partial is left to be published
