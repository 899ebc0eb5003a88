"""The seed's request as written, from s3a:// inputs to an s3a:// output folder, real Nextflow."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.reference.cache import identity
from cnvkit_nf.storage import objects as storage
from scaffold.local_service import LocalService
from scaffold.seaweed import S3Server
from scaffold.simulate import seed_like_cohort

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = ROOT / "tests" / "data" / "seed_request.json"
SEED = json.loads(SEED_FILE.read_text())


@pytest.fixture(scope="module")
def bucket(tmp_path_factory, nextflow_bin):
    """A fresh server whose bucket `genes` holds a generated cohort under the seed's names."""
    try:
        server = S3Server(tmp_path_factory.mktemp("s3e2e") / "data").start()
    except RuntimeError as err:
        pytest.fail(str(err))
    cohort = seed_like_cohort(tmp_path_factory.mktemp("cohort"), reads_per_sample=150_000,
                              seed=3, chrom_length=400_000)
    s3 = server.client()
    s3.create_bucket(Bucket="genes")
    for path in sorted(cohort.ref.parent.iterdir()):  # BAMs before their indexes
        s3.upload_file(str(path), "genes", f"cnvkit/{path.name}")
    yield server, cohort
    server.stop()


def test_seed_request_runs_on_object_storage(bucket, tmp_path, monkeypatch):
    server, cohort = bucket
    env = {**os.environ, **server.env()}
    result = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir",
                             str(tmp_path / "state"), "run", str(SEED_FILE)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "staged 5 inputs" in result.stderr
    assert "manifest: s3a://genes/cnvkit/output/manifest.json" in result.stdout

    s3 = server.client()
    listing = s3.list_objects_v2(Bucket="genes", Prefix="cnvkit/output/")["Contents"]
    uploaded = {item["Key"].removeprefix("cnvkit/output/"): item["Size"] for item in listing}
    body = json.loads(s3.get_object(Bucket="genes", Key="cnvkit/output/manifest.json")["Body"]
                      .read())
    assert {entry["path"] for entry in body["files"]} == {
        key for key in uploaded if key != "manifest.json" and not key.startswith("pipeline_info/")}
    assert "pipeline_info/versions.yml" in uploaded  # published, not covered
    for entry in body["files"]:
        content = s3.get_object(Bucket="genes", Key=f"cnvkit/output/{entry['path']}")["Body"].read()
        assert (len(content), hashlib.sha256(content).hexdigest()) == \
            (entry["size"], entry["sha256"]), entry["path"]

    calls = s3.get_object(Bucket="genes",
                          Key="cnvkit/output/samples/Son_S2_ALL/Son_S2_ALL.call.cns")
    rows = list(csv.DictReader(calls["Body"].read().decode().splitlines(), delimiter="\t"))
    son = next(spec for spec in cohort.samples if spec.name == "Son_S2_ALL")
    for event in son.events:
        middle = (event.start + event.end) // 2
        copies = {int(row["cn"]) for row in rows
                  if row["chromosome"] == event.chrom
                  and int(row["start"]) <= middle < int(row["end"])}
        assert copies == {event.copies}, event

    # A re-run rewrites the folder: the old manifest is withdrawn first, the new one goes last.
    again = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir",
                            str(tmp_path / "state"), "run", str(SEED_FILE)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads(s3.get_object(Bucket="genes", Key="cnvkit/output/manifest.json")["Body"]
                        .read())
    assert second["instance_id"] != body["instance_id"]
    assert "(0 objects downloaded, the rest from the cache)" in again.stderr
    assert "reference reused" in again.stderr  # the same objects: bucket, key, ETag and size

    # The reference named by its object URI (its record staged beside it): the same calls.
    request = {**SEED, "control_inputs": [], "output_dir": "s3a://genes/cnvkit/reused/",
               "reference_cnn": "s3a://genes/cnvkit/output/reference/reference.cnn"}
    (tmp_path / "reused.json").write_text(json.dumps(request))
    reused = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir",
                             str(tmp_path / "state"), "run", str(tmp_path / "reused.json")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert reused.returncode == 0, reused.stderr
    for name in ("samples/Son_S2_ALL/Son_S2_ALL.call.cns", "reference/reference.json"):
        assert s3.get_object(Bucket="genes", Key=f"cnvkit/reused/{name}")["Body"].read() == \
            s3.get_object(Bucket="genes", Key=f"cnvkit/output/{name}")["Body"].read(), name

    # A second job with the same controls and reference downloads nothing: the cache is hit.
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    _, fetched = storage.stage_in(storage.client(), validate_request(SEED).request.inputs(),
                                  tmp_path / "state" / "cache", tmp_path / "again")
    assert fetched == 0


def test_an_object_is_identified_by_its_etag_and_size(bucket, tmp_path, monkeypatch):
    """What keys a kept reference: a rewritten object is another input, the same bytes
    uploaded again the same one."""
    server, cohort = bucket
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    s3, cache = storage.client(), tmp_path / "cache"
    uri = "s3a://genes/identity/Father_S5_ALL.bam"
    data = cohort.bams["Father_S5_ALL"].read_bytes()

    def identity_of(content: bytes) -> list:
        s3.put_object(Bucket="genes", Key="identity/Father_S5_ALL.bam", Body=content)
        staged, _ = storage.stage_in(s3, [("control_inputs[0]", parse_location(uri))], cache,
                                     tmp_path / "staged")
        return identity(staged[uri], cache)

    first = identity_of(data)
    assert first[0] == "object"
    changed = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    assert identity_of(changed) != first  # rewritten: another ETag
    assert identity_of(data) == first  # the same bytes again: the same ETag and size


def test_failed_preflight_writes_nothing(bucket, tmp_path):
    server, _ = bucket
    request = {**SEED, "control_inputs": ["s3a://genes/cnvkit/Missing_S7.sort.mkdup.bam"],
               "output_dir": "s3a://genes/cnvkit/other-output/"}
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir",
                             str(tmp_path / "state"), "run", str(tmp_path / "request.json")],
                            capture_output=True, text=True, env={**os.environ, **server.env()})
    assert result.returncode == 1
    assert "control_inputs[0]: s3a://genes/cnvkit/Missing_S7.sort.mkdup.bam: not found" \
        in result.stderr
    assert "instance_id" not in result.stdout
    listing = server.client().list_objects_v2(Bucket="genes", Prefix="cnvkit/other-output/")
    assert listing.get("KeyCount", 0) == 0


def test_server_lost_during_upload_then_rerun_completes(bucket, tmp_path):
    """The server stops as results are published: the job fails, no manifest; a re-run after
    the restart (same data) completes the upload from the cached tasks."""
    server, _ = bucket
    request = {**SEED, "output_dir": "s3a://genes/cnvkit/output-retry/"}
    (tmp_path / "request.json").write_text(json.dumps(request))
    command = [str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(tmp_path / "state"), "run",
               str(tmp_path / "request.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **server.env()}, cwd=tmp_path)
    job_id = process.stdout.readline().split(": ", 1)[1].strip()
    local_manifest = tmp_path / "state" / "runs" / job_id / "results" / "manifest.json"
    deadline = time.monotonic() + 300
    while not local_manifest.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3, out + err
    assert "publishing the results failed" in out

    server.start()  # same data directory, new ports
    s3 = server.client()
    assert "Contents" not in s3.list_objects_v2(Bucket="genes",
                                                Prefix="cnvkit/output-retry/manifest.json")
    rerun = subprocess.run(command + ["--resume"], capture_output=True, text=True,
                           env={**os.environ, **server.env()}, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.splitlines()[0] == f"instance_id: {job_id}"
    assert "(0 objects downloaded, the rest from the cache)" in rerun.stderr
    body = json.loads(s3.get_object(Bucket="genes", Key="cnvkit/output-retry/manifest.json")
                      ["Body"].read())
    listing = s3.list_objects_v2(Bucket="genes", Prefix="cnvkit/output-retry/")["Contents"]
    keys = {item["Key"].removeprefix("cnvkit/output-retry/") for item in listing}
    assert {key for key in keys if not key.startswith("pipeline_info/")} == \
        {entry["path"] for entry in body["files"]} | {"manifest.json"}


def test_service_takes_the_seed_request_as_written(bucket, tmp_path):
    """Over HTTP the seed's own body (s3a:// paths) is checked with the service's credentials,
    staged, run (-stub-run here: the real run is tested above) and published; a missing
    object is refused with its field before any job exists."""
    server, _ = bucket
    token = "storage-token-0123456789"
    config = tmp_path / "service.json"
    config.write_text(json.dumps({"tokens": [{"token": token, "owner": "lab",
                                              "projects": ["cnvkit"]}],
                                  "object_roots": ["s3a://genes/{project}/"]}))
    (tmp_path / "state").mkdir()
    service = LocalService(tmp_path / "state", config, "--stub", env=server.env()).start()
    jobs = "/v2.0/cnvkit/gene/tools/cnvkit"
    try:
        status, answer = service.call("POST", jobs, token,
                                      {**SEED, "bed": "s3a://genes/cnvkit/missing.bed"})
        assert (status, answer["error_code"]) == (400, "DLI.0001")
        assert "bed: s3a://genes/cnvkit/missing.bed: not found" in answer["error_msg"]
        status, answer = service.call("POST", jobs, token,
                                      {**SEED, "output_dir": "s3a://genes/elsewhere/"})
        assert (status, answer["error_code"]) == (400, "DLI.0001")
        assert "output_dir: outside the writable object-storage folders" in answer["error_msg"]
        request = {**SEED, "output_dir": "s3a://genes/cnvkit/service-output/"}
        status, answer = service.call("POST", jobs, token, request)
        assert status == 201, answer
        deadline = time.monotonic() + 300
        while True:
            job = service.call("GET", f"{jobs}?instance-id={answer['instance_id']}",
                               token)[1]["instances"][0]
            if job["status"] not in ("LAUNCHING", "RUNNING") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        _, listing = service.call("GET", jobs, token)
    finally:
        assert service.stop() == 0
    assert job["status"] == "FINISHED", job["message"]
    assert listing["count"] == 1  # the refused request left no job
    s3 = server.client()
    body = json.loads(s3.get_object(Bucket="genes", Key="cnvkit/service-output/manifest.json")
                      ["Body"].read())
    assert body["instance_id"] == answer["instance_id"]
