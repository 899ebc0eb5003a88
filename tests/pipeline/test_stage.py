"""bin/cnvkit_stage.py: a stage's CNVkit command lines in one interpreter, each as cnvkit.py
runs it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
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
    assert ("not a cnvkit.py, reference2targets.py, cnvkit_report.py, bin_sizes.py, "
            "annotation_to_bed.py, sample_plots.py, diagram_image.py or genes_of_interest.py "
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


# --- blocks (--jobs N): lines cut by `---`, barriers `===` -----------------------------------

def write_bins(path: Path, shift: float, bins_per_chrom: int = 120) -> Path:
    """A .cnr of chr1 and chr2 (chr2 `shift` lower), for segment and scatter."""
    rows = ["chromosome\tstart\tend\tgene\tlog2\tdepth\tweight"]
    for chrom, level in (("chr1", 0.0), ("chr2", shift)):
        rows += [f"{chrom}\t{i * 1000}\t{i * 1000 + 500}\tg{i // 10}\t"
                 f"{level + ((i * 37) % 11 - 5) / 20:.3f}\t100\t1" for i in range(bins_per_chrom)]
    path.write_text("\n".join(rows) + "\n")
    return path


def first(log: str, text: str) -> int:
    """Where `text` starts in the log (it must be there)."""
    assert text in log, log
    return log.index(text)


def test_blocks_at_once_give_what_one_block_gives(small_cohort, tmp_path):
    """Two blocks (coverage, segment with Rscript, scatter with Agg) after a barrier, run at
    once by children forked after CNVkit's import, write what the same lines write in one."""
    blocks = (f"cnvkit.py target {small_cohort.bed} --split -o t.bed\n===\n" + "---\n".join(
        f"cnvkit.py coverage {bam} t.bed -o {n}.cnn\n"
        f"cnvkit.py segment ../{n}.cnr -o {n}.cns\n"
        f"cnvkit.py scatter ../{n}.cnr -s {n}.cns -o {n}.png\n"
        for n, bam in (("a", small_cohort.controls[0]), ("b", small_cohort.experimental[0]))))
    write_bins(tmp_path / "a.cnr", -1.0)
    write_bins(tmp_path / "b.cnr", 0.8)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "one").mkdir()
    at_once = subprocess.run([sys.executable, "-X", "importtime", str(STAGE), "--jobs", "2"],
                             input=blocks, capture_output=True, text=True, cwd=tmp_path / "jobs")
    assert at_once.returncode == 0, at_once.stderr
    one = stage(blocks.replace("---\n", "").replace("===\n", ""), tmp_path / "one")
    assert one.returncode == 0, one.stderr
    for name in ("t.bed", "a.cnn", "b.cnn", "a.cns", "b.cns", "a.png", "b.png"):
        assert (tmp_path / "jobs" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    log = at_once.stderr
    # the barrier: both blocks start after the target line's block has ended
    assert first(log, "[block 1]   (target:") < first(log, "[block 2] $ cnvkit.py coverage")
    assert first(log, "[block 1]   (target:") < first(log, "[block 3] $ cnvkit.py coverage")
    # at once: each block starts before the other has ended (its scatter line the last)
    assert first(log, "[block 2] $ cnvkit.py coverage") < first(log, "[block 3]   (scatter:")
    assert first(log, "[block 3] $ cnvkit.py coverage") < first(log, "[block 2]   (scatter:")
    assert "[block 2] Segmenting with method 'cbs'" in log  # CNVkit's own log is relayed
    # imports paid once: -X importtime reports each module a process imports; a child that
    # imported CNVkit again (spawned, not forked) would report cnvlib.commands and pandas too
    imports = [line.rsplit("|", 1)[-1].strip() for line in log.splitlines()
               if "import time:" in line]
    assert imports.count("cnvlib.commands") == 1 and imports.count("pandas") == 1


def test_a_failing_block_ends_the_stage(small_cohort, tmp_path):
    write_bins(tmp_path / "big.cnr", -1.0, bins_per_chrom=30_000)  # segments for seconds
    failed = stage(f"cnvkit.py target {tmp_path / 'missing.bed'} -o t.bed\n---\n"
                   "cnvkit.py segment big.cnr -o big.cns\n---\n"
                   f"cnvkit.py target {small_cohort.bed} -o later.bed\n", tmp_path, "--jobs", "2")
    assert failed.returncode == 1 and "[block 1] FileNotFoundError" in failed.stderr
    assert (f"[block 1] cnvkit_stage.py: status 1 from: cnvkit.py target {tmp_path}/missing.bed"
            in failed.stderr)
    assert failed.stderr.rstrip().endswith(
        "cnvkit_stage.py: block 1 failed (status 1); 1 running block(s) stopped, 1 not started")
    assert "[block 3]" not in failed.stderr and not (tmp_path / "later.bed").exists()
    assert "(segment:" not in failed.stderr  # stopped, not let finish
    refused = stage(f"cnvkit.py target {small_cohort.bed} --frobnicate -o t.bed\n===\n"
                    f"cnvkit.py target {small_cohort.bed} -o later.bed\n", tmp_path)
    assert refused.returncode == 2  # argparse's status; its message names the stage's script
    assert "[block 1] cnvkit_stage.py: error: unrecognized arguments: --frobnicate" in (
        refused.stderr)
    assert "[block 2]" not in refused.stderr and not (tmp_path / "later.bed").exists()
    zero = stage("cnvkit.py version\n", tmp_path, "--jobs", "0")
    assert zero.returncode == 2 and "--jobs: must be 1 or more, not 0" in zero.stderr


def test_words_and_stdout_in_blocks(tmp_path):
    """{sex} and {NAME} words are replaced in their block; a block's stdout is relayed."""
    (tmp_path / "s.cns").write_text("chromosome\tstart\tend\tgene\tlog2\tprobes\tweight\n"
                                    "chr1\t0\t119500\t-\t-1\t120\t120\n")
    (tmp_path / "words.json").write_text('{"name": ["-i", "S"], "none": null}')
    done = stage("cnvkit.py export bed s.cns {name} {sex} {none} -o s.bed\n---\n"
                 "cnvkit.py version\n", tmp_path, "--jobs", "3", "--sex-of=-y -x female",
                 "--words-from", "words.json")
    assert done.returncode == 0, done.stderr
    assert "[block 1] $ cnvkit.py export bed s.cns -i S -y -x female -o s.bed" in done.stderr
    assert (tmp_path / "s.bed").read_text().startswith("chr1\t0\t119500\tS\t")
    from cnvlib import __version__  # noqa: PLC0415 - the version the stage runs

    assert done.stdout == f"[block 2] {__version__}\n"


def test_each_block_may_have_its_own_call_options(tmp_path):
    """`--- --sex-of=...` gives a block the call options its {sex} words stand for (one
    block alone too: a stage of one tumour); a stage-wide --sex-of serves the others; any other
    option on a `---` line is refused before anything runs."""
    (tmp_path / "s.cns").write_text("chromosome\tstart\tend\tgene\tlog2\tprobes\tweight\n"
                                    "chr1\t0\t119500\t-\t-1\t120\t120\n")
    done = stage("--- --sex-of='-x male'\ncnvkit.py export bed s.cns {sex} -o a.bed\n"
                 "--- --sex-of='-y -x female'\ncnvkit.py export bed s.cns {sex} -o b.bed\n"
                 "---\ncnvkit.py export bed s.cns {sex} -o c.bed\n",
                 tmp_path, "--jobs", "2", "--sex-of=-x female")
    assert done.returncode == 0, done.stderr
    assert "[block 1] $ cnvkit.py export bed s.cns -x male -o a.bed" in done.stderr
    assert "[block 2] $ cnvkit.py export bed s.cns -y -x female -o b.bed" in done.stderr
    assert "[block 3] $ cnvkit.py export bed s.cns -x female -o c.bed" in done.stderr
    alone = stage("--- --sex-of='-x male'\ncnvkit.py export bed s.cns {sex} -o d.bed\n", tmp_path)
    assert alone.returncode == 0 and "$ cnvkit.py export bed s.cns -x male -o d.bed" in alone.stderr
    refused = stage("--- --optional scatter\ncnvkit.py version\n", tmp_path)
    assert refused.returncode == 2 and "takes only --sex-of=CALL_OPTIONS" in refused.stderr
    assert refused.stdout == ""


def descendants(pid: int) -> dict[int, tuple[str, float]]:
    """The processes below `pid` now (from /proc): pid -> (command name, CPU seconds used)."""
    parents, found = {}, {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # from the 3rd field of proc_pid_stat(5)
        parents[int(entry.name)] = int(fields[1])
        found[int(entry.name)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                                  (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    below, more = {pid}, True
    while more:
        more = {child for child, parent in parents.items() if parent in below} - below
        below |= more
    return {p: found[p] for p in below - {pid}}


def alive(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_sigterm_stops_every_block(tmp_path):
    write_bins(tmp_path / "big.cnr", -1.0, bins_per_chrom=60_000)  # R runs for seconds
    lines = "cnvkit.py segment big.cnr -o a.cns\n---\ncnvkit.py segment big.cnr -o b.cns\n"
    running = subprocess.Popen([sys.executable, str(STAGE), "--jobs", "2"], cwd=tmp_path,
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running.stdin.write(lines)
    running.stdin.close()
    started = time.monotonic()
    below = {}
    # each block's segment runs R, past its start-up (1 s of CPU), segmenting silently: an R
    # left behind then would run on for seconds (stopped earlier, it would die at its next
    # write to the pipe its dead parent read, hiding the leak)
    while sum(name == "R" and cpu > 1 for name, cpu in below.values()) < 2:
        assert time.monotonic() - started < 60 and running.poll() is None, below
        below = descendants(running.pid)
        time.sleep(0.05)
    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=30) == 128 + signal.SIGTERM
    assert running.stderr.read().rstrip().endswith("cnvkit_stage.py: stopped by SIGTERM")
    ended = time.monotonic() + 0.5  # a moment for the signal to end each R
    while [pid for pid in below if alive(pid)] and time.monotonic() < ended:
        time.sleep(0.05)
    assert not [pid for pid in below if alive(pid)], below
    assert not (tmp_path / "a.cns").exists() and not (tmp_path / "b.cns").exists()
