"""The files of the assays' new fields (issue 25: access_bed, access_exclude) are inputs like any
other: confined to the caller's roots, pinned (what was checked is what runs), checked by the
input check against the FASTA, kept to the service's object roots; and a request that mixes
access_bed with the access options is one refusal listing every problem, from `validate` and
from the service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.launch import local_files
from cnvkit_nf.launch.input_store import InputStore
from cnvkit_nf.service.config import DataRoot, ServiceConfig, load
from cnvkit_nf.service.job_api import Invalid, Jobs
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage.confined import Roots
from tests.service.test_job_api import ALICE, Pool

ROOT = Path(__file__).resolve().parents[2]
# this checkout's package, whichever one the environment has installed
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EITHER = ("give either access_bed or access_conf/access_exclude: access_bed is a precomputed "
          "result of `cnvkit.py access`, which access_conf and access_exclude would shape")


@pytest.fixture
def lab(tmp_path) -> dict[str, Path]:
    """lab-a's root with its files, lab-b's with a BED of its own."""
    a, b = tmp_path / "lab-a", tmp_path / "lab-b"
    a.mkdir(), b.mkdir()
    (a / "T1.bam").write_bytes(b"BAM")
    (a / "ref.fa").write_text(">chr1\nACGT\n")
    for name in ("kit.bed", "access.bed", "blacklist.bed"):
        (a / name).write_text("chr1\t0\t4\n")
    (b / "secret.bed").write_text("chr1\t0\t4\tlab-b\n")
    (a / "escape.bed").symlink_to(b / "secret.bed")
    return {"a": a, "b": b}


def lab_request(lab: dict[str, Path], **changes) -> dict:
    a = lab["a"]
    return {"experimental_inputs": [str(a / "T1.bam")], "control_inputs": [],
            "output_dir": str(a / "out"), "ref": str(a / "ref.fa"), "bed": str(a / "kit.bed"),
            **changes}


def roots(lab: dict[str, Path]) -> Roots:
    return Roots((lab["a"],), (lab["a"],), "project lab-a")


def path_messages(lab: dict[str, Path], data: dict) -> dict[str, str]:
    validation = validate_request(data)
    return {p.field: p.message for p in local_files.path_problems(validation.request,
                                                                  roots(lab))}


def test_the_access_files_are_confined_to_the_roots(lab):
    a, b = lab["a"], lab["b"]
    assert path_messages(lab, lab_request(lab, access_exclude=[str(a / "blacklist.bed")])) == {}
    messages = path_messages(lab, lab_request(lab, access_bed=str(a / "escape.bed")))
    assert messages == {"access_bed": (
        f"{a}/escape.bed: is a symbolic link (or inside one) that leads outside the data "
        f"roots; local paths must be inside the data roots of project lab-a: {a}")}
    messages = path_messages(lab, lab_request(lab, method="wgs", access_exclude=[
        str(a / "blacklist.bed"), str(b / "secret.bed"), str(a / "nope.bed")]))
    assert set(messages) == {"access_exclude[1]", "access_exclude[2]"}
    assert messages["access_exclude[1]"].startswith(f"{b}/secret.bed: is outside the data roots")


def test_a_path_with_a_nextflow_expansion_is_refused_before_any_file_is_opened(lab):
    data = lab_request(lab, access_exclude=["${projectDir}/blacklist.bed"])
    validation = validate_request(data)
    assert [(p.field, p.message) for p in validation.problems] == [(
        "access_exclude[0]", "path contains $ { }: Nextflow would expand ${...} or read the "
                             "path as a file pattern, not as the file named; rename the "
                             "folder or file")]
    assert validation.request.access_exclude == (None,)  # nothing to open


def test_object_uris_only_under_the_projects_object_roots(tmp_path):
    path = tmp_path / "service.json"
    path.write_text(json.dumps({"object_roots": ["s3a://genes/{project}/"]}))
    config = load(path)
    data = {"experimental_inputs": ["s3a://genes/lab-a/T1.bam"], "control_inputs": [],
            "output_dir": "s3a://genes/lab-a/out/", "ref": "s3a://genes/lab-a/r.fa",
            "method": "wgs", "access_exclude": ["s3a://genes/lab-a/bl.bed",
                                                "s3a://genes/lab-b/bl.bed"]}
    problems = config.request_problems(validate_request(data).request, "lab-a")
    assert [(p.field, p.message) for p in problems] == [(
        "access_exclude[1]", "outside the object-storage folders of project lab-a: "
                             "s3a://genes/lab-a/")]
    gone = {k: v for k, v in data.items() if k != "access_exclude"}
    problems = config.request_problems(validate_request(
        {**gone, "access_bed": "obs://genes/lab-a/access.bed"}).request, "lab-a")
    assert [p.field for p in problems] == ["access_bed"]


def test_an_access_file_swapped_after_its_check_is_not_what_runs(lab, tmp_path):
    """The opened file is what the private store keeps and the params name; the path swapped
    for another file afterwards changes nothing of the job."""
    a, b = lab["a"], lab["b"]
    data = lab_request(lab, access_bed=str(a / "access.bed"),
                       method="wgs")
    request = validate_request(data).request
    opened, problems = local_files.open_inputs(request, roots(lab))
    assert problems == []
    try:
        (a / "access.bed").rename(a / "moved.bed")
        (a / "access.bed").symlink_to(b / "secret.bed")  # now leads to lab-b's file
        store = InputStore(tmp_path / "inputs")
        private = {item.path: store.admit(item) for item in opened}
    finally:
        for item in opened:
            item.close()
    params = to_params(request, staged=private)
    assert Path(params["access_bed"]).read_text() == "chr1\t0\t4\n"
    assert params["access_bed"] != str(a / "access.bed")
    # and the next open of the path is refused: it leads out of the roots now
    assert set(path_messages(lab, data)) == {"access_bed"}


def test_the_content_check_reads_the_access_files_against_the_fasta(small_cohort, tmp_path):
    """The launcher's content check passes --method, --access-bed and --exclude: a BED whose
    contigs are not the FASTA's is a problem of its field."""
    folder = Path(small_cohort.ref).parent
    (folder / "hg19-blacklist.bed").write_text("1\t0\t100\n2\t0\t100\n")
    (folder / "gzipped.bed").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")
    data = {"experimental_inputs": [str(small_cohort.bams[n]) for n in small_cohort.bams
                                    if not n.startswith("Control")],
            "control_inputs": [], "output_dir": str(tmp_path / "out"),
            "ref": str(small_cohort.ref), "method": "wgs",
            "access_exclude": [str(folder / "hg19-blacklist.bed"), str(folder / "gzipped.bed")]}
    validation = validate_request(data)
    assert validation.ok, validation.problems
    problems = local_files.check(validation.request, Roots((tmp_path.parent.parent,),
                                                           (tmp_path.parent.parent,), "you"))
    by_field = {p.field: p.message for p in problems if p.severity == "error"}
    assert set(by_field) == {"access_exclude[0]", "access_exclude[1]"}, problems
    assert "no BED contig is in the reference" in by_field["access_exclude[0]"]
    assert "chr" in by_field["access_exclude[0]"]  # the hint: the FASTA names chr1, chr2
    assert "is gzip-compressed" in by_field["access_exclude[1]"]
    # a hybrid request without its bed is refused by the check too (a direct run's rule)
    script = ROOT / "bin" / "check_inputs.py"
    result = subprocess.run([sys.executable, str(script), "--json", "--method", "hybrid",
                             "--ref", str(small_cohort.ref)], capture_output=True, text=True)
    assert result.returncode == 1
    assert [p["message"] for p in json.loads(result.stdout)["problems"]] == [
        "no targets (--bed): a hybrid job bins the targets of its BED; only a wgs job may "
        "leave it out"]
    result = subprocess.run([sys.executable, str(script), "--json", "--method", "wgs",
                             "--ref", str(small_cohort.ref), "--access-bed",
                             str(folder / "hg19-blacklist.bed")], capture_output=True, text=True)
    assert result.returncode == 1
    assert [p["file"] for p in json.loads(result.stdout)["problems"]] == [
        str(folder / "hg19-blacklist.bed")]


def test_check_options_writes_the_bin_size_plan(tmp_path):
    script = ROOT / "bin" / "check_inputs.py"
    out = tmp_path / "options.json"
    result = subprocess.run([sys.executable, str(script), "--json", "--method", "wgs",
                             "--autobin", "false", "--option", "access_conf=-s 10000", "--option",
                             "antitarget_conf=-a 100000", "--check-options", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    written = json.loads(out.read_text())
    assert written["access_conf"] == {"args": "-s 10000", "processes": None}
    assert written["target_conf"] == {"args": "", "processes": None, "size": 5000,
                                      "size_from": "wgs default", "split": True,
                                      "autobin": False}
    assert written["antitarget_conf"] == {"args": "-a 100000", "processes": None,
                                          "size": None, "size_from": "none", "split": False,
                                          "autobin": False}
    result = subprocess.run([sys.executable, str(script), "--json", "--option",
                             "access_conf=-x a.bed", "--check-options", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert [p["message"] for p in json.loads(result.stdout)["problems"]] == [
        "-x/--exclude: exclusion BEDs go in access_exclude (a list of BED files: as input "
        "files they are checked, confined to the allowed roots and pinned), not in access_conf"]


# --- one refusal listing every problem --------------------------------------------------------

def mixed(lab: dict[str, Path]) -> dict:
    """A wgs request that gives access_bed and the access options both."""
    a = lab["a"]
    return {**lab_request(lab, method="wgs"), "access_bed": str(a / "access.bed"),
            "access_conf": "-s 10000 -x other.bed",
            "access_exclude": [str(a / "blacklist.bed"), str(lab["b"] / "secret.bed")]}


def test_validate_refuses_the_mix_listing_every_problem(lab, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(mixed(lab)))
    result = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "validate", "--json", str(path)],
                            capture_output=True, text=True, cwd=tmp_path, env=ENV)
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert [(p["field"], p["message"]) for p in body["problems"]
            if p["severity"] == "error"] == [
        ("access_conf", EITHER), ("access_exclude", EITHER),
        ("access_conf", "-x/--exclude: exclusion BEDs go in access_exclude (a list of BED "
                        "files: as input files they are checked, confined to the allowed "
                        "roots and pinned), not in access_conf")]


def test_the_service_refuses_the_mix_with_one_answer(lab, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    config = ServiceConfig(data_roots=(DataRoot(str(tmp_path / "{project}"), True),))
    jobs = Jobs(store, Pool(store), config, None)
    with pytest.raises(Invalid) as refused:
        jobs.submit(json.dumps(mixed(lab)), "lab-a", ALICE)
    found = [(p.field, p.message.split(":")[0]) for p in refused.value.problems]
    assert found == [("access_conf", "give either access_bed or access_conf/access_exclude"),
                     ("access_exclude", "give either access_bed or access_conf/access_exclude"),
                     ("access_conf", "-x/--exclude"),
                     ("access_exclude[1]", f"{lab['b']}/secret.bed")]
    assert "outside the data roots" in refused.value.problems[-1].message
    assert jobs.list({"lab-a"})[0] == 0
