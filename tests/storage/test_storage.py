"""Object-storage preflight against a real S3 server (SeaweedFS, started on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.storage import objects as storage
from scaffold.seaweed import S3Server

ROOT = Path(__file__).resolve().parents[2]
SEED = json.loads((ROOT / "tests" / "data" / "seed_request.json").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        running = S3Server(tmp_path_factory.mktemp("s3") / "data").start()
    except RuntimeError as err:
        pytest.fail(str(err))
    s3 = running.client()
    s3.create_bucket(Bucket="genes")
    for field, location in validate_request({**SEED, "has_annotate": True}).request.inputs():
        s3.put_object(Bucket=location.bucket, Key=location.key, Body=f"{field}\n".encode())
    s3.put_object(Bucket="genes", Key="cnvkit/Father_S5_ALL.sort.mkdup.bam.bai", Body=b"i")
    s3.put_object(Bucket="genes", Key="cnvkit/an-object", Body=b"x")
    yield running
    running.stop()


@pytest.fixture
def s3(server, monkeypatch):
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return storage.client()


def check(s3, request: dict) -> list:
    parsed = validate_request(request).request
    return storage.preflight(s3, parsed.inputs(), parsed.output_dir)


def objects(server) -> list[str]:
    listing = server.client().list_objects_v2(Bucket="genes")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_seed_request_passes_with_notes(s3):
    problems = check(s3, SEED)
    assert [p for p in problems if p.severity == "error"] == []
    noted = {p.field for p in problems}
    # Father's index exists; the other BAMs' and the reference's indexes will be built
    assert noted == {"experimental_inputs[0]", "control_inputs[1]", "ref"}


def test_missing_bam_and_bucket_are_each_named(s3, server):
    before = objects(server)
    request = {**SEED, "experimental_inputs": ["s3a://genes/cnvkit/Nobody_S9.bam"],
               "bed": "s3a://no-such-bucket/t.bed", "output_dir": "s3a://other-bucket/out/"}
    errors = {p.field: p.message for p in check(s3, request) if p.severity == "error"}
    assert errors == {
        "experimental_inputs[0]": "s3a://genes/cnvkit/Nobody_S9.bam: not found",
        "bed": "s3a://no-such-bucket/t.bed: bucket 'no-such-bucket' does not exist",
        "output_dir": "s3a://other-bucket/out/: bucket 'other-bucket' does not exist",
    }
    assert objects(server) == before


def test_output_dir_naming_an_object(s3):
    errors = [p.message for p in check(s3, {**SEED, "output_dir": "obs://genes/cnvkit/an-object"})
              if p.severity == "error"]
    assert errors == ["obs://genes/cnvkit/an-object/: names an existing object, not a folder"]


def test_wrong_credentials(server, monkeypatch):
    for key, value in server.env(AWS_SECRET_ACCESS_KEY="wrong").items():
        monkeypatch.setenv(key, value)
    messages = {p.message for p in check(storage.client(), SEED) if p.severity == "error"}
    assert "s3a://genes/cnvkit/hg38.filtered.fa: credentials rejected by the object storage " \
           "(SignatureDoesNotMatch)" in messages


def test_unreachable_endpoint(server, monkeypatch):
    for key, value in server.env(AWS_ENDPOINT_URL="http://127.0.0.1:9").items():
        monkeypatch.setenv(key, value)
    problems = check(storage.client(), SEED)
    assert len(problems) == 5  # every input (no annotation), nothing else tried
    assert all("endpoint unreachable" in p.message for p in problems)


def test_validate_check_inputs_on_object_storage(server, tmp_path):
    env = {"PATH": "/usr/bin:/bin", **server.env()}
    seed_file = ROOT / "tests" / "data" / "seed_request.json"
    ok = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "validate", "--check-inputs",
                         str(seed_file)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "will be built" in ok.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SEED, "control_inputs": ["s3a://genes/cnvkit/Gone_S1.bam"]}))
    result = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "validate", "--check-inputs",
                             str(bad)], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "control_inputs[0]: s3a://genes/cnvkit/Gone_S1.bam: not found" in result.stderr


def test_native_params_and_aws_config(server, tmp_path):
    """--storage native: URIs kept (as s3://) for nf-amazon, and the aws {} config it reads."""
    env = {"PATH": "/usr/bin:/bin", **server.env(AWS_REGION="eu-west-0")}
    config, seed_file = tmp_path / "aws.config", str(ROOT / "tests" / "data" / "seed_request.json")
    launcher = str(ROOT / "bin" / "cnvkit-nf")
    result = subprocess.run([launcher, "params", "--storage", "native", "--aws-config",
                             str(config), seed_file], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    params = json.loads(result.stdout)
    assert params["experimental_inputs"] == ["s3://genes/cnvkit/Son_S2_ALL.sort.mkdup.bam"]
    assert params["output_dir"] == "s3://genes/cnvkit/output/"
    assert params["ref"] == "s3://genes/cnvkit/hg38.filtered.fa"
    text = config.read_text()
    assert "id 'nf-amazon'" in text and "region = 'eu-west-0'" in text
    assert "s3PathStyleAccess = true" in text and f"endpoint = '{server.endpoint}'" in text
    assert "secret" not in text.lower() and "cnvkit-test-key" not in text
    local = subprocess.run([launcher, "params", seed_file], capture_output=True, text=True,
                           env=env)
    assert local.returncode == 1 and "object storage staging" in local.stderr


def test_settings_file_overrides_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_REGION", "eu-west-0")
    config = tmp_path / "storage.json"
    config.write_text(json.dumps({"endpoint_url": "https://obs.example.test",
                                  "addressing_style": "virtual",
                                  "endpoints": {"s3": "https://s3.example.test"}}))
    settings = storage.load_settings(config)
    assert settings.region == "eu-west-0" and settings.virtual_hosted
    assert settings.endpoint_for("obs") == "https://obs.example.test"
    assert settings.endpoint_for("s3") == "https://s3.example.test"
    mixed = storage.endpoint_problems(settings, [parse_location("obs://genes/a.bam"),
                                                 parse_location("s3://genes/b.bam")])
    assert len(mixed) == 1 and "mixed endpoints" in mixed[0].message
    assert "obs:// -> https://obs.example.test" in mixed[0].message
    same = [parse_location("obs://genes/a.bam"), parse_location("s3a://genes/b.bam")]
    assert storage.endpoint_problems(settings, same) == []  # s3a falls back to endpoint_url
    config.write_text(json.dumps({"endpoint": "https://x"}))
    with pytest.raises(storage.StorageError, match="unknown setting"):
        storage.load_settings(config)
    config.write_text(json.dumps({"endpoint_url": "ftp://x"}))
    with pytest.raises(storage.StorageError, match="not an http"):
        storage.load_settings(config)


def test_cli_reads_the_settings_file(server, tmp_path):
    env = {"PATH": "/usr/bin:/bin", **server.env()}
    env.pop("AWS_ENDPOINT_URL")
    config = tmp_path / "storage.json"
    config.write_text(json.dumps({"endpoint_url": server.endpoint}))
    launcher = str(ROOT / "bin" / "cnvkit-nf")
    seed_file = str(ROOT / "tests" / "data" / "seed_request.json")
    ok = subprocess.run([launcher, "--storage-config", str(config), "validate",
                         "--check-inputs", seed_file], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    config.write_text(json.dumps({"endpoint_url": server.endpoint,
                                  "endpoints": {"obs": "http://127.0.0.1:1"}}))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({**SEED, "output_dir": "obs://genes/cnvkit/output/"}))
    result = subprocess.run([launcher, "--storage-config", str(config), "run", str(mixed)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "mixed endpoints" in result.stderr
    assert "instance_id" not in result.stdout


def test_withdraw_manifest(server, s3):
    server.client().put_object(Bucket="genes", Key="cnvkit/old-out/manifest.json", Body=b"{}")
    storage.withdraw_manifest(s3, parse_location("s3a://genes/cnvkit/old-out"))
    listing = server.client().list_objects_v2(Bucket="genes", Prefix="cnvkit/old-out/")
    assert listing.get("KeyCount", 0) == 0
    storage.withdraw_manifest(s3, parse_location("s3a://genes/cnvkit/old-out/"))  # none: fine


def test_a_failed_upload_takes_back_what_it_wrote(server, s3, tmp_path):
    """When one file cannot be uploaded, the objects of the new result already written are
    deleted: the folder holds nothing of it (and no manifest)."""
    results = tmp_path / "results"
    (results / "samples").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "samples/c.txt", "d.txt"):
        (results / name).write_text(f"{name}\n")
    (results / "manifest.json").write_text("{}\n")
    upload = s3.upload_file

    def failing(path, bucket, key, **options):  # the store refuses one object
        if key.endswith("/samples/c.txt"):
            raise storage.S3UploadFailedError("refused")
        return upload(path, bucket, key, **options)

    s3.upload_file = failing
    with pytest.raises(storage.StorageError, match="c.txt failed"):
        storage.publish(s3, results, parse_location("s3a://genes/taken-back/"), workers=1)
    assert [key for key in objects(server) if key.startswith("taken-back/")] == []
