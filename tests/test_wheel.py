"""`pip install .` as a user does it: the non-editable wheel in a fresh venv, `cnvkit-nf` run
from another folder with only what the wheel carries (the pipeline, bin/, the schemas)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnvkit_nf import pipeline_files
from cnvkit_nf.launch import nextflow
from tests.conftest import ROOT, seed_request

pytestmark = pytest.mark.e2e

SCAFFOLDING = ("scaffold", "cnvkit_nf.simulate", "cnvkit_nf.seaweed", "cnvkit_nf.local_service",
               "cnvkit_nf.demo")


def checkout_files() -> list[str]:
    """The checkout's files as git sees them (tracked or new, not ignored): what a clean clone
    builds from, without the build/ folder or caches of this one."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel built from a copy of the checkout, installed with its dependencies into a new
    venv; an environment without the checkout (no CNVKIT_NF_PIPELINE, no PYTHONPATH) and a
    folder outside it to run from."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(base / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # pinned as the checkout's venv; no byte-code compiling (it costs more than it saves here)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-c",
                          str(ROOT / "requirements.txt"), *map(str, (base / "dist").glob("*.whl"))],
                         capture_output=True, text=True)
    assert pip.returncode == 0, f"installing the wheel failed:\n{pip.stdout}{pip.stderr}"
    env = {key: value for key, value in os.environ.items()
           if key not in (pipeline_files.SETTING, nextflow.SETTING, "PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"XDG_CACHE_HOME": str(base / "cache"), "NXF_OFFLINE": "true"}
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "env": env, "cwd": elsewhere, "cache": base / "cache"}


def cli(installed: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The venv's `cnvkit-nf ARGS...`, run from outside the checkout."""
    return subprocess.run([str(installed["venv"] / "bin" / "cnvkit-nf"), *args],
                          capture_output=True, text=True, cwd=installed["cwd"],
                          env={**installed["env"], **env}, timeout=300)


def python(installed: dict, code: str) -> str:
    """What the venv's Python prints running `code` from outside the checkout."""
    done = subprocess.run([str(installed["venv"] / "bin" / "python"), "-c", code],
                          capture_output=True, text=True, cwd=installed["cwd"],
                          env=installed["env"], check=True)
    return done.stdout.strip()


def test_the_package_carries_the_pipeline_and_no_scaffolding(installed):
    found = json.loads(python(installed, (
        "import importlib.util, json; from cnvkit_nf import pipeline_files\n"
        f"print(json.dumps({{'pipeline': str(pipeline_files.PIPELINE), 'scaffolding': "
        f"[n for n in {SCAFFOLDING!r} if importlib.util.find_spec(n)]}}))")))
    pipeline = Path(found["pipeline"])
    assert pipeline.is_relative_to(installed["venv"].resolve()) and pipeline.name == "pipeline"
    assert found["scaffolding"] == []
    for name in ("main.nf", "nextflow.config", "nextflow_schema.json", "tower.yml",
                 "conf/modules.config", "workflows/cnvkit.nf", "modules/cnvkit/sample/main.nf",
                 "schema/cnvkit_request.schema.json", "tests/data/stub/genome.fa"):
        assert (pipeline / name).is_file(), name
    for script in pipeline.rglob("*.nf"):  # every module and subworkflow a script includes
        for included in re.findall(r"^include \{.*\} from '([^']+)'", script.read_text(), re.M):
            assert (script.parent / included / "main.nf").is_file() or \
                (script.parent / f"{included}.nf").is_file(), f"{script}: {included}"
    scripts = sorted(p.name for p in (ROOT / "bin").glob("*.py")
                     if p.read_text().startswith("#!"))
    assert scripts
    for name in scripts:  # Nextflow runs them from the task PATH
        assert os.access(pipeline / "bin" / name, os.X_OK), f"bin/{name} is not executable"
    assert not (pipeline / "bin" / "cnvkit-nf").exists()
    wrapper = pipeline.parent / "nextflow_wrapper" / "nextflow"
    assert os.access(wrapper, os.X_OK) and (wrapper.parent / "pom.xml").is_file()


def test_validate_from_another_folder(installed):
    shutil.copy(ROOT / "tests" / "data" / "seed_request.json", installed["cwd"] / "seed.json")
    valid = cli(installed, "validate", "seed.json")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    request = json.loads((ROOT / "tests" / "data" / "seed_request.json").read_text())
    request["expermental_inputs"] = request.pop("experimental_inputs")
    request["segment_conf"] = "-m nonsense"
    (installed["cwd"] / "bad.json").write_text(json.dumps(request))
    invalid = cli(installed, "validate", "bad.json", "--json")
    assert invalid.returncode == 1, invalid.stdout + invalid.stderr
    problems = {p["field"]: p["message"] for p in json.loads(invalid.stdout)["problems"]}
    assert "did you mean 'experimental_inputs'?" in problems["expermental_inputs"]
    # CNVkit's own parser, through the packaged bin/cnvkit_options.py
    assert "invalid choice: 'nonsense'" in problems["segment_conf"]


@pytest.fixture(scope="module")
def package_nextflow(installed, nextflow_bin) -> Path:
    """The installed package's Nextflow folder (`~/.cache/cnvkit-nf/nextflow`) with its wrapper;
    the checkout's jars are lent to it rather than resolved from Maven Central again."""
    tools = installed["cache"] / "cnvkit-nf" / "nextflow"
    assert python(installed, "from cnvkit_nf.launch import nextflow\n"
                             "nextflow.provide_wrapper(); print(nextflow.WRAPPER)") == \
        str(tools / "nextflow")
    if Path(nextflow_bin) == nextflow.WRAPPER:
        (tools / "lib").symlink_to(nextflow.TOOLS / "lib")
        shutil.copy(nextflow.STAMP, tools / ".installed")
    return tools


def test_the_package_finds_nextflow_in_the_users_cache_folder(installed, package_nextflow):
    assert os.access(package_nextflow / "nextflow", os.X_OK)
    assert (package_nextflow / "pom.xml").is_file()
    found = python(installed, "from cnvkit_nf.launch import nextflow; print(nextflow.find())")
    assert found in (str(package_nextflow / "nextflow"), shutil.which("nextflow"))


def test_a_stub_job_runs_and_its_results_verify(installed, package_nextflow, cohort, tmp_path):
    """`run --stub` of the installed launcher: the packaged pipeline runs every process, its
    last task writes the manifest, and `verify` accepts the folder."""
    out = tmp_path / "out"
    request = tmp_path / "request.json"
    request.write_text(json.dumps(seed_request(cohort, out)))
    ran = cli(installed, "--state-dir", str(tmp_path / "state"), "run", "--stub", str(request))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    verified = cli(installed, "verify", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (out / "manifest.json").is_file() and (out / "samples" / "Son_S2_ALL").is_dir()
