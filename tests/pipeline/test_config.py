"""The pipeline's configuration as the real `nextflow config` resolves it, and module shape."""

import os
import re
import subprocess
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
