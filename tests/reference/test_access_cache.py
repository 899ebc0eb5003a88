"""Accessible regions kept between jobs (cnvkit_nf/reference/access.py, issue 25): what keys
them, the entry store they share with the references, and a job's steps that reuse, compute
and keep them; the reference's key across assays; a run's bin-size warnings in the job's
message. On real files, without Nextflow (the steps are called one by one)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.launch.runner import Ended, RunOptions
from cnvkit_nf.launch.submission import (
    REUSED,
    Execution,
    ObjectStore,
    Plan,
    bin_size_warnings,
    new_job,
    notices,
)
from cnvkit_nf.reference import access
from cnvkit_nf.reference.access import AccessCache
from cnvkit_nf.reference.cache import ReferenceCache, key_of
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.state.layout import StateDir
from cnvkit_nf.storage import manifest

ACCESS_BED = "chr1\t0\t250000\nchr1\t260000\t400000\n"


@pytest.fixture
def data(tmp_path) -> Path:
    """A FASTA, a target BED, two exclusion BEDs and BAM stand-ins (keys read identities
    only)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "ref.fa").write_text(">chr1\n" + "ACGT" * 100 + "\n")
    (folder / "ref.fa.fai").write_text("chr1\t400\t6\t400\t401\n")
    (folder / "kit.bed").write_text("chr1\t10\t100\n")
    for name in ("blacklist.bed", "gaps.bed"):
        (folder / name).write_text(f"chr1\t0\t5\t{name}\n")
    for name in ("T1.bam", "T2.bam", "N1.bam"):
        (folder / name).write_bytes(name.encode() * 100)
    return folder


def request(data: Path, **changes) -> dict:
    base = {"experimental_inputs": [str(data / "T1.bam")], "control_inputs": [],
            "output_dir": str(data.parent / "out"), "ref": str(data / "ref.fa"),
            "bed": str(data / "kit.bed")}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def params_of(data: dict, **staged) -> dict:
    validation = validate_request(data)
    assert validation.ok, validation.problems
    return to_params(validation.request, staged={k: Path(v) for k, v in staged.items()})


# --- the access key ----------------------------------------------------------------------------

def test_the_access_key_changes_with_each_ingredient(data, monkeypatch):
    first = access.key_of(params_of(request(data)))
    assert first and access.key_of(params_of(request(data))) == first
    # what does not shape access: the targets, the tumours, the other options, autobin
    assert access.key_of(params_of(request(data, bed=str(data / "gaps.bed"),
                                           experimental_inputs=[str(data / "T2.bam")],
                                           autobin=True, target_conf="-a 300"))) == first
    with_conf = access.key_of(params_of(request(data, access_conf="-s 10000")))
    excluded = access.key_of(params_of(request(data, access_exclude=[str(data / "blacklist.bed")])))
    both = access.key_of(params_of(request(data, access_exclude=[
        str(data / "blacklist.bed"), str(data / "gaps.bed")])))
    assert len({first, with_conf, excluded, both}) == 4
    # an exclusion BED rewritten (same bytes, its mtime restored): a new ctime, a new key
    blacklist = data / "blacklist.bed"
    info = blacklist.stat()
    blacklist.write_bytes(blacklist.read_bytes())
    os.utime(blacklist, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert access.key_of(params_of(request(data, access_exclude=[str(blacklist)]))) != excluded
    # another FASTA of the same bytes
    shutil.copy(data / "ref.fa", data / "other.fa")
    shutil.copy(data / "ref.fa.fai", data / "other.fa.fai")
    assert access.key_of(params_of(request(data, ref=str(data / "other.fa")))) != first
    # the CNVkit version, and the pipeline's line that runs access
    real_version = access.importlib.metadata.version
    monkeypatch.setattr(access.importlib.metadata, "version",
                        lambda name: "0.9.99" if name == "cnvkit" else real_version(name))
    assert access.key_of(params_of(request(data))) != first
    monkeypatch.undo()
    monkeypatch.setattr(access, "access_code", lambda: ["cnvkit.py access ${fasta} -s 1"])
    assert access.key_of(params_of(request(data))) != first


def test_jobs_that_compute_no_access_have_no_access_key(data):
    assert access.key_of(params_of(request(data, method="amplicon"))) is None
    assert access.key_of(params_of(request(data, access_bed=str(data / "gaps.bed")))) is None
    reused = params_of(request(data, reference_cnn=str(data / "ref.cnn"), control_inputs=[]))
    assert access.key_of(reused) is None
    assert access.key_of(params_of(request(data, method="wgs", bed=None))) is not None
    assert access.key_of(params_of(request(data, ref=str(data / "missing.fa")))) is None


def test_the_access_line_is_the_pipelines():
    assert access.access_code() and all("cnvkit.py access" in line
                                        for line in access.access_code())


# --- the reference key across assays --------------------------------------------------------

def test_the_reference_key_follows_method_autobin_and_access(data):
    base = request(data, control_inputs=[str(data / "N1.bam")])
    first = key_of(params_of(base))
    keys = {first}
    for changes in ({"method": "amplicon"}, {"autobin": True}, {"autobin": False},
                    {"access_conf": "-s 10000"},
                    {"access_exclude": [str(data / "blacklist.bed")]},
                    {"access_bed": str(data / "gaps.bed")}):
        keys.add(key_of(params_of({**base, **changes})))
    assert len(keys) == 7
    # a wgs job without a bed has a key
    assert key_of(params_of({**request(data, bed=None, method="wgs"),
                             "control_inputs": base["control_inputs"]}))


def test_autobin_without_controls_keys_the_tumours(data):
    flat = request(data, autobin=True)
    first = key_of(params_of(flat))
    other = key_of(params_of({**flat, "experimental_inputs": [str(data / "T2.bam")]}))
    assert first != other
    # without autobin (hybrid's default) a flat reference does not depend on the tumours
    plain = request(data)
    assert key_of(params_of(plain)) == key_of(params_of(
        {**plain, "experimental_inputs": [str(data / "T2.bam")]}))
    # with controls, autobin reads a control: the tumours are not in the key
    pooled = request(data, autobin=True, control_inputs=[str(data / "N1.bam")])
    assert key_of(params_of(pooled)) == key_of(params_of(
        {**pooled, "experimental_inputs": [str(data / "T2.bam")]}))


# --- the entry store of the access cache -------------------------------------------------------

def _regions(folder: Path, text: str = ACCESS_BED) -> Path:
    """A run's reference/ folder with its access.bed."""
    folder.mkdir(parents=True)
    (folder / "access.bed").write_text(text)
    return folder


def test_kept_reused_and_a_damaged_entry_computed_again(tmp_path):
    cache = AccessCache(tmp_path / "access")
    lease = cache.acquire("lab-a", "k1")
    assert lease.entry is None and lease.held  # this job computes it
    kept = cache.keep("lab-a", "k1", _regions(tmp_path / "run1" / "reference"))
    lease.release()
    assert kept.record == {} and kept.file("access.bed").read_text() == ACCESS_BED
    again = cache.acquire("lab-a", "k1")
    assert again.entry is not None and again.entry.folder == kept.folder
    again.release()
    assert cache.acquire("lab-b", "k1").entry is None  # each project has its own
    # damaged: removed, computed again, with a warning
    (kept.folder / "access.bed").write_text(ACCESS_BED.replace("250000", "250001"))
    damaged = cache.acquire("lab-a", "k1")
    assert damaged.entry is None and damaged.warning == (
        "the kept access BED k1 was corrupt (access.bed: SHA-256 differs from its record); "
        "it was removed and this job builds the access BED again")
    assert cache.entry("lab-a", "k1") is None
    damaged.release()


def test_a_job_does_not_wait_for_access_another_job_computes(tmp_path):
    cache = AccessCache(tmp_path / "access")
    builder = cache.acquire("lab-a", "k1")
    other = cache.acquire("lab-a", "k1", wait=False)
    assert other.entry is None and not other.held  # it computes its own and keeps none
    builder.release()
    assert cache.acquire("lab-a", "k1", wait=False).held


# --- a job's steps --------------------------------------------------------------------------

def _execution(tmp_path: Path, data: dict, name: str) -> tuple[Execution, dict, list[str]]:
    """A job of `data` with its params as `Execution._params` makes them (its results in its
    run folder), and its log."""
    state = tmp_path / "state"
    validation = validate_request(data)
    assert validation.ok, validation.problems
    plan = Plan(validation.request, ObjectStore(None, None, []), str(tmp_path / name))
    store = JobStore(StateDir(state).jobs_db)
    job = new_job(store, plan, state)
    log: list[str] = []
    execution = Execution(store, job, plan, state, RunOptions(), log=log.append,
                          references=ReferenceCache(StateDir(state).references))
    results = Path(job.run_dir) / "results"
    params = to_params(validation.request, staged={validation.request.output_dir.raw: results})
    params["job"] = {"instance_id": job.instance_id}
    return execution, params, log


def _finished(execution: Execution, params: dict, bin_sizes: dict | None = None,
              said: str | None = None) -> None:
    """The run's results as the pipeline leaves them (reference/access.bed, bin_sizes.json,
    manifest last), then the job concluded; `said`: the notice of its start."""
    results = Path(params["output_dir"])
    reference = results / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    if params.get("access_bed"):
        shutil.copy(params["access_bed"], reference / "access.bed")
    else:
        (reference / "access.bed").write_text(ACCESS_BED)
    if bin_sizes is not None:
        (reference / "bin_sizes.json").write_text(json.dumps(bin_sizes))
    manifest.write(results)
    execution.store.start(execution.job.instance_id, pid=os.getpid(), attempts=1)
    if said:  # as `Execution._start` says it
        execution.store.warn(execution.job.instance_id, said)
    execution._conclude(Ended(), params)


def test_a_second_job_gets_the_first_jobs_access(tmp_path, data):
    given = request(data, access_conf="-s 10000", access_exclude=[str(data / "blacklist.bed")],
                    output_dir=str(tmp_path / "out1"))
    first, params, log = _execution(tmp_path, given, "out1")
    reference_key = key_of(params)
    lease = first._access_lease(params)
    assert lease.entry is None and params["job"]["access"]["reused"] is False
    assert params["access_conf"] == "-s 10000"  # computed as asked
    _finished(first, params)
    lease.release()
    kept = first.accesses.entries("local")
    assert [e.key for e in kept] == [access.key_of(params)]

    second, params2, log2 = _execution(tmp_path, {**given, "output_dir": str(tmp_path / "out2")},
                                       "out2")
    lease = second._access_lease(params2)
    assert params2["access_bed"] == str(kept[0].file("access.bed"))
    assert params2["access_conf"] == "" and "access_exclude" not in params2
    assert params2["checked_options"]["access_conf"] == {"args": "", "processes": None}
    assert params2["job"]["access"] == {
        "key": kept[0].key, "reused": True, "kept": True, "access_conf": "-s 10000",
        "access_exclude": [str(data / "blacklist.bed")]}
    assert log2 == [f"{second.job.instance_id}: {access.REUSED}"]
    # the reference the second job builds is keyed as the first one's
    assert key_of(params2) == reference_key
    _finished(second, params2, {"warnings": ["antitarget bins of 950000 bp do not fit between "
                                             "the targets: few or no antitarget bins made",
                                             "autobin clamped the target size to 50000"]},
              said=access.REUSED)
    lease.release()
    job = second.store.get(second.job.instance_id)
    assert job.status == "FINISHED"
    assert job.message is None  # it did not fail
    assert job.warnings == [access.REUSED, "antitarget bins of 950000 bp do not fit between the "
                            "targets: few or no antitarget bins made",
                            "autobin clamped the target size to 50000"]
    assert f"{second.job.instance_id}: warning: autobin clamped the target size to 50000" in log2
    assert (tmp_path / "out2" / "reference" / "access.bed").read_text() == ACCESS_BED


def test_jobs_that_compute_no_access_take_no_lease(tmp_path, data):
    for number, changes in enumerate(({"method": "amplicon"},
                                      {"access_bed": str(data / "gaps.bed")})):
        out = f"out{number}"
        execution, params, _ = _execution(
            tmp_path, request(data, output_dir=str(tmp_path / out), **changes), out)
        assert execution._access_lease(params) is None and "access" not in params["job"]


def test_an_input_changed_during_the_run_keeps_no_access(tmp_path, data):
    given = request(data, access_exclude=[str(data / "blacklist.bed")])
    execution, params, log = _execution(tmp_path, given, "out")
    lease = execution._access_lease(params)
    (data / "blacklist.bed").write_text("chr1\t0\t9\n")
    _finished(execution, params)
    lease.release()
    assert execution.accesses.entries() == []
    assert f"{execution.job.instance_id}: an input changed during the run: its accessible " \
           "regions are not kept for reuse" in log


def test_bin_size_warnings_of_a_results_folder(tmp_path):
    assert bin_size_warnings(tmp_path) == []  # absent: a reused reference, an older pipeline
    (tmp_path / "reference").mkdir()
    sizes = tmp_path / "reference" / "bin_sizes.json"
    for text in ("not json", "[1, 2]", '{"warnings": null}'):
        sizes.write_text(text)
        assert bin_size_warnings(tmp_path) == []
    sizes.write_text(json.dumps({"method": "hybrid", "warnings": ["one", 3, " ", "two"]}))
    assert bin_size_warnings(tmp_path) == ["one", "two"]


def test_the_notices_of_a_jobs_start():
    assert notices({}) == []
    assert notices({"reference": {"key": "k", "reused": True},
                    "access": {"key": "a", "reused": True}}) == [REUSED, access.REUSED]
    assert notices({"reference": {"key": "k", "reused": False, "warning": "removed"},
                    "access": {"key": "a", "reused": False, "warning": "also removed"}}) == [
        "removed", "also removed"]
    assert notices({"access": {"key": "a", "reused": True}}) == [access.REUSED]
