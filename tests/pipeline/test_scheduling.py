"""How the job's tasks are scheduled (issue 26): the CPUs each asks for (subworkflows/local/cpus),
no task waiting on inputs it does not read, controls' coverage first; and CNVkit's outputs are
the same whatever -p its commands are given."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.conftest import ROOT
from tests.pipeline.test_sample_facts import read_table

# A stub run of the test_stub profile (2 controls, 2 tumours) on a 4-CPU local executor, where one
# tumour's coverage is slow: what waits for it, and what does not.
SLOW = "tumour_D"
CONFIG = f"""
executor {{ cpus = 4 }}
params.max_cpus = 4
process {{
    resourceLimits = [cpus: 4, memory: 4.GB, time: 1.h]
    withName: 'CNVKIT_COVERAGE' {{
        beforeScript = {{ '{SLOW}' in metas*.id ? 'sleep 8' : 'true' }}
    }}
}}
"""


def stub_trace(nextflow_bin: str, work: Path, *args: str, config: str = "") -> list[dict]:
    """The trace rows of a stub run of the test_stub profile with CONFIG (and `config`) and ARGS."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "slow.config").write_text(CONFIG + config)
    result = subprocess.run(
        [nextflow_bin, "run", str(ROOT / "main.nf"), "-profile", "test_stub,local", "-stub",
         "-c", "slow.config", "--output_dir", "out", *args],
        cwd=work, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NXF_OFFLINE": "true",
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    return read_table(work / "out" / "pipeline_info" / "trace.tsv")


def when(row: dict, field: str) -> datetime:
    return datetime.strptime(row[field], "%Y-%m-%d %H:%M:%S.%f")


def test_the_reference_and_each_tumour_start_once_their_own_inputs_exist(nextflow_bin, tmp_path):
    """One task per sample (as on a cluster): the pooled reference runs once the controls'
    coverage exists, beside the slow tumour's coverage; the other tumour's calls start before
    that coverage ends; controls' coverage tasks are made (and so started by the local executor)
    first. CPUs: coverage -p 2 for 4 samples on 4 CPUs gets 1 each; segment -p 2 for 2 tumours
    gets 2."""
    rows = stub_trace(nextflow_bin, tmp_path, "--coverage_conf", "-q 10 -p 2",
                      "--segment_conf", "-m cbs -p 2", "--group_stages", "false")
    by = {(row["process"].split(":")[-1], row["tag"]): row for row in rows}
    coverage = {tag: row for (process, tag), row in by.items() if process == "CNVKIT_COVERAGE"}
    samples = {tag: row for (process, tag), row in by.items() if process == "CNVKIT_SAMPLE"}
    reference = by["CNVKIT_REFERENCE", "pooled"]
    slow_done = when(coverage[SLOW], "complete")

    assert when(reference, "start") < slow_done
    assert when(samples["tumour_A"], "start") < slow_done
    for tumour, row in samples.items():
        assert when(row, "start") >= when(coverage[tumour], "complete")
        assert when(row, "start") >= when(reference, "complete")
    for control in ("normal_B", "normal_C"):
        assert when(reference, "start") >= when(coverage[control], "complete")

    made = sorted(coverage.values(), key=lambda row: int(row["task_id"]))
    assert [row["tag"] for row in made[:2]] == ["normal_B", "normal_C"]
    assert {row["cpus"] for row in coverage.values()} == {"1"}
    assert {row["cpus"] for row in samples.values()} == {"2"}


def test_one_sample_on_a_machine_gets_the_cpus_of_its_p(nextflow_bin, tmp_path):
    """With fewer samples than CPUs a task gets its -p, but no more than CNVkit can keep busy:
    a tumour-only job of one sample (a flat reference) on 4 CPUs, on bins CNVkit's coverage -p
    spreads over 3 processes (one per 5,000 intervals), asks for 3 of coverage's -p 4 and for
    segment's -p 4."""
    bed = tmp_path / "bins.bed"
    with open(bed, "w") as out:
        out.writelines(f"chr1\t{i * 100}\t{i * 100 + 100}\t-\n" for i in range(12_000))
    tumour = ROOT / "tests/data/stub/tumour_A.sort.mkdup.bam"
    rows = stub_trace(nextflow_bin, tmp_path, "--coverage_conf", "-p 4", "--bed", str(bed),
                      "--group_stages", "false",
                      "--segment_conf", "-m cbs -p 4",
                      config=f"params.experimental_inputs = ['{tumour}']\n"
                             "params.control_inputs = []\n")
    cpus = {row["process"].split(":")[-1]: row["cpus"] for row in rows}
    assert (cpus["CNVKIT_COVERAGE"], cpus["CNVKIT_SAMPLE"]) == ("3", "4")


def test_a_small_job_on_one_machine_starts_cnvkit_as_often_whatever_its_samples(
        nextflow_bin, tmp_path):
    """Grouped (the local executor's default): a coverage task per role and one task for every
    tumour's calls, each with its samples' CPUs; 2 or 5 tumours make the same CNVkit tasks, and
    the count the run announced (tasks.txt) is the count it ran."""
    stub = ROOT / "tests/data/stub"
    tumours = [str(stub / "tumour_A.sort.mkdup.bam"), str(stub / "tumour_D.sort.mkdup.bam")]
    for name in ("tumour_E", "tumour_F", "tumour_G"):
        (tmp_path / f"{name}.sort.mkdup.bam").write_bytes(b"")
        tumours.append(str(tmp_path / f"{name}.sort.mkdup.bam"))
    ran = {}
    for count, extra in ((2, ""), (5, f"params.experimental_inputs = {tumours}\n")):
        rows = stub_trace(nextflow_bin, tmp_path / str(count), config=extra)
        cnvkit = sorted(row["process"].split(":")[-1] for row in rows
                        if row["process"].split(":")[-1].startswith("CNVKIT_"))
        ran[count] = cnvkit
        announced = (tmp_path / str(count) / "out" / "pipeline_info" / "tasks.txt").read_text()
        assert int(announced) == len(rows)
        tasks = {(row["process"].split(":")[-1], row["tag"]): row for row in rows}
        calls = [row for (process, _), row in tasks.items() if process == "CNVKIT_SAMPLE"]
        assert len(calls[0]["tag"].split()) == count and calls[0]["cpus"] == str(min(4, count))
        controls = tasks["CNVKIT_COVERAGE", "normal_B normal_C"]
        assert controls["cpus"] == "2"
    assert ran[2] == ran[5] == ["CNVKIT_COHORT", "CNVKIT_COVERAGE", "CNVKIT_COVERAGE",
                                "CNVKIT_PANEL", "CNVKIT_PREPARE", "CNVKIT_REFERENCE",
                                "CNVKIT_SAMPLE"]


def test_cnvkit_outputs_do_not_depend_on_p(small_cohort, tmp_path):
    """coverage on a BED of two 5,000-line chunks, and segment, write the same bytes with -p 1
    and -p 2: giving a task more or fewer CPUs changes nothing in its results."""
    from cnvlib import commands

    def cnvkit(*words) -> None:
        args = commands.parse_args([str(word) for word in words])
        args.func(args)

    bins = tmp_path / "bins.bed"
    cnvkit("target", small_cohort.bed, "--split", "--avg-size", 10, "-o", bins)
    assert sum(1 for _ in open(bins)) > 5000
    bam = small_cohort.experimental[0]
    for p in (1, 2):
        cnvkit("coverage", bam, bins, "-q", 10, "-p", p, "-o", tmp_path / f"p{p}.cnn")
    one, two = (tmp_path / "p1.cnn").read_bytes(), (tmp_path / "p2.cnn").read_bytes()
    assert one == two
    cnvkit("reference", "-t", bins, "-f", small_cohort.ref, "-o", tmp_path / "flat.cnn")
    antitargets = tmp_path / "none.bed"
    antitargets.write_text("")
    cnvkit("coverage", bam, antitargets, "-o", tmp_path / "anti.cnn")
    cnvkit("fix", tmp_path / "p1.cnn", tmp_path / "anti.cnn", tmp_path / "flat.cnn",
           "-o", tmp_path / "s.cnr")
    for p in (1, 2):
        cnvkit("segment", tmp_path / "s.cnr", "-m", "cbs", "-p", p, "--rscript-path", "Rscript",
               "-o", tmp_path / f"p{p}.cns")
    assert (tmp_path / "p1.cns").read_bytes() == (tmp_path / "p2.cns").read_bytes()
