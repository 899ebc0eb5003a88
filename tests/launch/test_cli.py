"""The launcher as a newcomer meets it: `--help` names `cnvkit-nf` and shows an example for
every command, errors are said once ("error: error:" never), and `cnvkit-nf init` writes a
request for a folder of BAMs that validates and checks against the real files."""

from __future__ import annotations

import json
import os
import subprocess

import click
import pytest
from click.testing import CliRunner

from cnvkit_nf.cli import main
from tests.conftest import LAUNCHER


def commands(group: click.Group = main, path: tuple[str, ...] = ()):
    """Every command and group of the launcher, by its words."""
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def launch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_help_names_the_launcher():
    shown = launch("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: cnvkit-nf [OPTIONS]")
    assert "python -m" not in shown.stdout


@pytest.mark.parametrize("words", [words for words, _ in commands()], ids=" ".join)
def test_every_command_has_an_example_of_itself(words):
    shown = CliRunner().invoke(main, [*words, "--help"], prog_name="cnvkit-nf")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"Usage: {' '.join(['cnvkit-nf', *words])} ")
    example = shown.output.split("Example:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert example and all(line.startswith(("    cnvkit-nf ", "    nextflow ", "        "))
                           for line in example), shown.output  # commands, continued
    assert any(f" {' '.join(words)} " in f"{line} " for line in example), example


@pytest.mark.parametrize("args", [
    ["submit", "{request}", "--server", "http://127.0.0.1:1", "--project", "p"],
    ["status", "nope", "--server", "http://127.0.0.1:1", "--project", "p"],
    ["validate", "{request}"], ["validate", "/nonexistent.json"], ["run", "{request}"],
    ["status", "nope"], ["log", "nope"], ["params", "{request}"], ["verify", "/"],
    ["clean", "--max-age", "soon"], ["cache", "prune", "--max-size", "big"],
    ["init", "--bams", "/", "--ref", "/etc/hostname"], ["serve"], ["submit", "{request}"],
], ids=lambda args: " ".join(args[:2]))
def test_an_error_is_said_once(args, tmp_path):
    request = tmp_path / "request.json"
    request.write_text("{")
    done = launch("--state-dir", str(tmp_path / "state"),
                  *[arg.format(request=request) for arg in args],
                  env={"CNVKIT_NF_RETRY_SECONDS": "0", "CNVKIT_NF_TOKEN": "t" * 24})
    assert done.returncode != 0
    said = (done.stdout + done.stderr).lower()
    assert said.strip() and "error: error" not in said, said
    assert "traceback" not in said


def test_init_writes_a_request_that_checks_against_the_files(cohort, tmp_path):
    bams = tmp_path / "bams"
    bams.mkdir()
    for name, bam in cohort.bams.items():
        for suffix in ("", ".bai"):
            os.symlink(f"{bam}{suffix}", bams / f"{name}.bam{suffix}")
    written = launch("init", "--bams", str(bams), "--ref", str(cohort.ref), "--bed",
                     str(cohort.bed), "--control", "Father*", "--control", "Mather*",
                     "--annotation", str(cohort.annotation), "--output-dir",
                     str(tmp_path / "out"))
    assert written.returncode == 0, written.stderr
    request = json.loads(written.stdout)
    assert request == {
        "experimental_inputs": [str((bams / "Son_S2_ALL.bam").resolve())],
        "control_inputs": [str((bams / f"{name}.bam").resolve())
                           for name in ("Father_S5_ALL", "Mather_S1_ALL")],
        "output_dir": str(tmp_path / "out"), "ref": str(cohort.ref), "bed": str(cohort.bed),
        "has_annotate": True, "annotation_file": str(cohort.annotation)}
    (tmp_path / "request.json").write_text(written.stdout)
    checked = launch("--state-dir", str(tmp_path / "state"), "validate",
                     str(tmp_path / "request.json"), "--check-inputs")
    assert checked.returncode == 0, checked.stderr
    flat = launch("init", "--bams", str(bams), "--ref", str(cohort.ref), "--bed",
                  str(cohort.bed))
    assert json.loads(flat.stdout)["control_inputs"] == [] and "flat" in flat.stderr
    for args, said in ((["--control", "Nobody*"], "--control Nobody*: matches none of"),
                       (["--control", "*"], "no tumour"), ([], "--bed is required")):
        refused = launch("init", "--bams", str(bams), "--ref", str(cohort.ref), *args,
                         *(["--bed", str(cohort.bed)] if args else []))
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
