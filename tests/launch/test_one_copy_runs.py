"""One copy of the results in real launcher runs (issue 26): a finished job's results/ and
output_dir share their files (hard links, one device) and its work dir is gone; a failed job
keeps its work dir and its log says how much; of a shared --work-dir, only the run's task
folders go."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from cnvkit_nf.launch.runner import disk_bytes
from cnvkit_nf.storage import manifest
from tests.conftest import launch, seed_request


def _job_id(result) -> str:
    return result.stdout.splitlines()[0].split(": ", 1)[1]


def test_a_finished_run_keeps_one_copy(seed_run):
    result = seed_run["result"]
    assert result.returncode == 0, result.stderr
    run = seed_run["state"] / "runs" / _job_id(result)
    out, results = seed_run["out"], run / "results"
    assert json.loads((run / "params.json").read_text())["publish_dir_mode"] == "link"
    assert not (run / "work").exists()
    assert manifest.verify(out) == []
    names = [item["path"] for item in json.loads((out / manifest.NAME).read_text())["files"]]
    for name in names:
        one, other = os.stat(out / name), os.stat(results / name)
        assert (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino), name
    published = re.search(r"published (\d+) files .*; (\d+) linked \(\d+ bytes\), (\d+) copied",
                          result.stderr)
    copied = [p for p in out.rglob("*") if p.is_file() and not manifest.covered(
        p.relative_to(out).as_posix())]
    assert published and (int(published[2]), int(published[3])) == (len(names), len(copied)), \
        result.stderr
    assert re.search(r"work dir deleted \(\d+ bytes freed", result.stderr), result.stderr
    # the bytes of both folders: hard links count once
    both = disk_bytes([out, results])
    assert both < disk_bytes([out]) + disk_bytes([results])


def _stub_run(cohort, tmp_path: Path, *args: str):
    request = seed_request(cohort, tmp_path / "out")
    (tmp_path / "request.json").write_text(json.dumps(request))
    return launch(["run", str(tmp_path / "request.json"), "--stub", *args],
                  tmp_path / "state", cwd=tmp_path)


def test_a_failed_run_keeps_its_work_dir_for_its_resume(cohort, nextflow_bin, tmp_path):
    """A failed run's work dir stays (its log says how much), and `run --resume` reuses its
    finished tasks; that run finished, its work dir goes."""
    config = tmp_path / "fail.config"
    config.write_text("process { withName: 'CNVKIT_REFERENCE' { beforeScript = 'exit 3' } }\n")
    result = _stub_run(cohort, tmp_path, "-c", str(config))
    assert result.returncode != 0, result.stderr
    run = tmp_path / "state" / "runs" / _job_id(result)
    assert list((run / "work").glob("*/*/.command.sh")), "the finished tasks' folders are kept"
    kept = re.search(r"its work dir keeps (\d+) bytes for a retry", result.stderr)
    assert kept and int(kept[1]) == disk_bytes([run / "work"], alone=True) > 0, result.stderr
    resumed = _stub_run(cohort, tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _job_id(resumed) == run.name
    statuses = {row["process"].split(":")[-1]: row["status"] for row in csv.DictReader(
        open(tmp_path / "out" / "pipeline_info" / "trace.tsv"), delimiter="\t")}
    assert statuses["CNVKIT_PREPARE"] == "CACHED" and statuses["CNVKIT_REFERENCE"] == "COMPLETED"
    assert not (run / "work").exists() and manifest.verify(tmp_path / "out") == []


def test_keep_work_keeps_a_finished_runs_work_dir(cohort, nextflow_bin, tmp_path):
    """`run --keep-work`: the finished job's work dir stays, and its log says how much."""
    result = _stub_run(cohort, tmp_path, "--keep-work")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "state" / "runs" / _job_id(result)
    kept = re.search(r"its work dir keeps (\d+) bytes \(kept as asked\)", result.stderr)
    assert kept and int(kept[1]) > 0 and list((run / "work").glob("*/*/.command.run"))
    assert manifest.verify(tmp_path / "out") == []


def test_of_a_shared_work_dir_only_the_runs_task_folders_go(cohort, nextflow_bin, tmp_path):
    """Another run's task folder (and a file of the operator's) in the --work-dir stay."""
    shared = tmp_path / "shared-work"
    other = shared / "ab" / ("c" * 30)
    other.mkdir(parents=True)
    (other / ".command.sh").write_text("another run's task\n")
    (shared / "notes.txt").write_text("the operator's\n")
    result = _stub_run(cohort, tmp_path, "--work-dir", str(shared))
    assert result.returncode == 0, result.stderr
    assert re.search(r"work dir deleted \(\d+ bytes freed", result.stderr), result.stderr
    left = sorted(p.relative_to(shared).as_posix() for p in shared.rglob("*")
                  if p.is_file() and p.parent.parent.parent == shared)
    assert left == [f"ab/{'c' * 30}/.command.sh"]
    assert (shared / "notes.txt").exists()
    assert manifest.verify(tmp_path / "out") == []
