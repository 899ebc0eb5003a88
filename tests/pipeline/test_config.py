"""The pipeline's configuration as the real `nextflow config` resolves it, and module shape."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnvkit_nf.launch import nextflow

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(ROOT.glob("modules/*/*/main.nf"))


def resolved(nextflow_bin: str, *args: str) -> dict[str, str]:
    """`nextflow config -flat` of the pipeline as a {setting: value} dict."""
    result = subprocess.run(
        [nextflow_bin, "config", "-flat", *args, str(ROOT)], capture_output=True, text=True,
        env={**os.environ, "NXF_OFFLINE": "true"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("local", {"process.executor": "'local'"}),
        ("docker", {"docker.enabled": "true", "podman.enabled": "false"}),
        ("podman", {"podman.enabled": "true", "docker.enabled": "false"}),
        ("singularity", {"singularity.enabled": "true", "singularity.autoMounts": "true"}),
        ("apptainer", {"apptainer.enabled": "true", "apptainer.autoMounts": "true"}),
        ("conda", {"conda.enabled": "true", "docker.enabled": "false"}),
        ("slurm", {"process.executor": "'slurm'",
                   "process.resourceLimits": "[cpus:32, memory:'128.GB', time:'48.h']"}),
        ("awsbatch", {"process.executor": "'awsbatch'",
                      "process.resourceLimits": "[cpus:16, memory:'64.GB', time:'24.h']"}),
        ("k8s", {"process.executor": "'k8s'",
                 "process.resourceLimits": "[cpus:8, memory:'32.GB', time:'24.h']"}),
        ("test", {"process.resourceLimits": "[cpus:2, memory:'4.GB', time:'1.h']",
                  "trace.file": "'results-test/pipeline_info/trace.tsv'"}),
        ("test_stub", {"process.resourceLimits": "[cpus:2, memory:'4.GB', time:'1.h']",
                       "trace.file": "'results-test/pipeline_info/trace.tsv'"}),
    ],
)
def test_profile_resolves(nextflow_bin, profile, expected) -> None:
    config = resolved(nextflow_bin, "-profile", profile)
    assert {key: config.get(key) for key in expected} == expected


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.parent.name)
def test_module_is_pinned_and_has_a_stub(module) -> None:
    text = module.read_text()
    tool = re.search(r'conda "bioconda::(cnvkit=0\.9\.14|samtools=1\.21)"', text)
    assert tool
    name, version = tool.group(1).split("=")
    images = re.findall(r"'([^']+/[^']+)'", text.split("container", 1)[1].split("input:", 1)[0])
    assert len(images) == 2 and all(f"{name}:{version}" in i or "sha256" in i for i in images)
    assert "stub:" in text


@pytest.mark.parametrize("module", sorted(ROOT.glob("modules/cnvkit/*/main.nf")),
                         ids=lambda p: p.parent.name)
def test_managed_options_come_after_user_options(module) -> None:
    """Inputs first, then the user's options (`${args}`, `${target_args}`...), then only
    options the pipeline sets: for argparse the last occurrence wins, so a direct `nextflow
    run` cannot redirect them."""
    commands = re.findall(r"cnvkit\.py \w+ [^\n\"]*", module.read_text())
    with_options = [c for c in commands if re.search(r"\$\{\w*args\}", c)]
    assert with_options  # every stage takes a request's options; other lines are fixed
    for command in with_options:
        before, _, after = re.split(r" (\$\{\w*args\})", command, maxsplit=1)
        assert after, command
        assert not any(word.startswith("-") for word in before.split()[2:]), command
        # option-value pairs; ${annotate}, ${flat}, ${given} (-x SEX), ${exclusions} (-x BED
        # each) and cnvkit_stage.py's {target_size} and {antitarget_size} (--split, --avg-size
        # N, -a N: bin_sizes.py's words) are such pairs or nothing
        assert re.fullmatch(r"( -[-\w]+ [^-\s]\S*| \$\{(annotate|flat|given|exclusions)\}"
                            r"| \{(target_size|antitarget_size)\})+", after), command


def test_the_installed_nextflow_starts_from_its_class_data_archive(nextflow_bin, tmp_path):
    """`make install` archives the classes a run loads; the JVM maps them instead of loading
    them one by one (about a second of every start)."""
    if Path(nextflow_bin) != nextflow.WRAPPER:
        pytest.skip(f"Nextflow on PATH ({nextflow_bin}) is not the installed wrapper")
    log = tmp_path / "classes.log"
    done = subprocess.run([nextflow_bin, "-version"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NXF_OPTS": f"-Xlog:class+load=info:file={log}"})
    assert done.returncode == 0 and "version 24.10" in done.stdout
    assert "nextflow.cli.Launcher source: shared objects file (top)" in log.read_text(), \
        "no class-data archive: run `.venv/bin/python -m cnvkit_nf.launch.nextflow install`"


# The memory each CNVkit stage asks for (conf/base.config): 1 GB and this many bytes per byte
# of the inputs whose lines are bins, doubled on a retry.
PER_BYTE = {"CNVKIT_COVERAGE": 18, "CNVKIT_REFERENCE": 16, "CNVKIT_SAMPLE": 18,
            "CNVKIT_COHORT": 9, "CNVKIT_PANEL": 16}  # the panel: per block at once (1 here)


def stub_memory(nextflow_bin: str, work: Path, bed: Path) -> dict[str, set[float]]:
    """The GB each CNVkit stage asked for in a stub run of the test_stub profile with this BED
    (the stubs write a line per bin: the coverages are the BEDs' lines), coverage unchunked,
    a task per sample."""
    work.mkdir()
    result = subprocess.run(
        [nextflow_bin, "run", str(ROOT / "main.nf"), "-profile", "test_stub,local", "-stub",
         "--bed", str(bed), "--output_dir", str(work / "out"), "--max_memory", "64.GB",
         "--coverage_chunk_bins", "1000000", "--group_stages", "false"],
        cwd=work, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NXF_OFFLINE": "true",
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    asked: dict[str, set[float]] = {}
    with open(work / "out" / "pipeline_info" / "trace.tsv") as trace:
        for row in csv.DictReader(trace, delimiter="\t"):
            number, unit = row["memory"].split()
            asked.setdefault(row["process"].split(":")[-1], set()).add(
                float(number) / {"GB": 1, "MB": 1024}[unit])
    return asked


def test_cnvkit_stages_ask_for_memory_by_their_bins(nextflow_bin, tmp_path):
    """Memory grows with a job's bins, from a floor of 1 GB: the stub run of 600,000 bins (a
    WGS job at 5 kb; below coverage_chunk_bins here) asks each stage's multiple of its inputs'
    bytes more than the empty BED's."""
    big = tmp_path / "wgs.bed"
    with open(big, "w") as bed:
        for chrom in range(1, 7):
            bed.writelines(f"chr{chrom}\t{i * 5000}\t{i * 5000 + 5000}\t-\n"
                           for i in range(100_000))
    small = stub_memory(nextflow_bin, tmp_path / "small", ROOT / "tests/data/stub/targets.bed")
    grown = stub_memory(nextflow_bin, tmp_path / "big", big)
    assert all(small[stage] == {1.0} for stage in PER_BYTE), small
    gib = big.stat().st_size / 2**30
    # what each stage reads: coverage the BEDs; the reference two controls' coverages and the
    # BEDs; a sample its coverage; the cohort four target coverages (the stub reference and
    # results are empty); the panel the two controls' coverages
    inputs = {"CNVKIT_COVERAGE": gib, "CNVKIT_REFERENCE": 3 * gib, "CNVKIT_SAMPLE": gib,
              "CNVKIT_COHORT": 4 * gib, "CNVKIT_PANEL": 2 * gib}
    for stage, per_byte in PER_BYTE.items():
        assert grown[stage] == {round(1 + per_byte * inputs[stage], 1)}, (stage, grown[stage])
    assert grown["CNVKIT_PREPARE"] == {2.0}  # other stages: 2 GB as before
