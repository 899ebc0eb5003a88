"""The job service's settings: tokens, data roots (paths, links, read-only roots) and limits."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.launch import local_files
from cnvkit_nf.service.config import ConfigError, DataRoot, ServiceConfig, load


def _config(tmp_path, **settings):
    path = tmp_path / "service.json"
    path.write_text(json.dumps(settings))
    return load(path)


def _request(**paths) -> dict:
    return {"experimental_inputs": [paths.get("bam", "s3a://genes/x/S1.bam")],
            "control_inputs": [], "output_dir": paths.get("out", "s3a://genes/out/"),
            "ref": paths.get("ref", "s3a://genes/x/r.fa"),
            "bed": paths.get("bed", "s3a://genes/x/t.bed")}


def _messages(config: ServiceConfig, request: dict, project: str = "lab-a") -> dict[str, str]:
    """What the service says of a request: its rules, and where the request's paths lead."""
    parsed = validate_request(request).request
    problems = config.request_problems(parsed, project)
    problems += local_files.path_problems(parsed, config.roots(project))
    return {p.field: p.message for p in problems}


def test_tokens_by_hash_or_in_clear(tmp_path):
    config = _config(tmp_path, tokens=[
        {"token": "0123456789abcdef", "owner": "alice", "projects": ["lab-a"]},
        {"token_sha256": hashlib.sha256(b"secret-of-bob-123").hexdigest(), "owner": "bob",
         "projects": ["lab-b", "lab-c"]}])
    assert config.caller("0123456789abcdef").owner == "alice"
    assert config.caller("secret-of-bob-123").projects == {"lab-b", "lab-c"}
    assert config.caller("0123456789abcdeF") is None
    assert config.caller(None) is None and config.caller("") is None


@pytest.mark.parametrize(("entry", "complaint"), [
    ({"token": "short", "owner": "a", "projects": ["p"]}, "16 characters"),
    ({"token": "0123456789abcdef", "owner": "a", "projects": ["../p"]}, "project ids"),
    ({"token": "0123456789abcdef", "projects": ["p"]}, "needs an owner"),
    ({"token_sha256": "abc", "owner": "a", "projects": ["p"]}, "64 hex digits"),
])
def test_bad_token_entries_are_named(tmp_path, entry, complaint):
    with pytest.raises(ConfigError, match=complaint):
        _config(tmp_path, tokens=[entry])


def test_bad_settings_are_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown settings"):
        _config(tmp_path, token=[])
    with pytest.raises(ConfigError, match="max_inputs"):
        _config(tmp_path, limits={"max_inputs": 0})
    with pytest.raises(ConfigError, match="absolute"):
        _config(tmp_path, data_roots=["data"])
    with pytest.raises(ConfigError, match="writable"):
        _config(tmp_path, data_roots=[{"path": "/data", "writable": "yes"}])
    monkeypatch.setenv("CNVKIT_NF_TOKENS", "[{")
    with pytest.raises(ConfigError, match="CNVKIT_NF_TOKENS"):
        load(None)


def test_tokens_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNVKIT_NF_TOKENS", json.dumps(
        [{"token": "env-token-0123456789", "owner": "ci", "projects": ["lab-a"]}]))
    assert load(None).caller("env-token-0123456789").owner == "ci"


def test_local_paths_need_data_roots():
    messages = _messages(ServiceConfig(), _request(bam="/data/S1.bam"))
    assert "no data roots" in messages["experimental_inputs[0]"]
    assert _messages(ServiceConfig(), _request()) == {}  # object storage only: fine


def test_paths_inside_the_project_root(tmp_path):
    for project in ("lab-a", "lab-b"):
        (tmp_path / project).mkdir()
    (tmp_path / "lab-a" / "S1.bam").write_bytes(b"")
    (tmp_path / "lab-a" / "r.fa").write_text(">c\nA\n")
    config = ServiceConfig(data_roots=(DataRoot(str(tmp_path / "{project}"), True),))
    ok = _request(bam=str(tmp_path / "lab-a" / "S1.bam"), ref=str(tmp_path / "lab-a" / "r.fa"),
                  out=str(tmp_path / "lab-a" / "new" / "out"))
    assert _messages(config, ok) == {}
    other = _messages(config, ok, project="lab-b")
    assert set(other) == {"experimental_inputs[0]", "ref", "output_dir"}
    assert "data roots of project lab-b" in other["ref"]


def test_links_out_of_the_root_are_refused(tmp_path):
    root, outside = tmp_path / "lab-a", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "S1.bam").write_bytes(b"")
    (outside / "secret").write_text("x")
    (root / "S1.bam").symlink_to(outside / "S1.bam")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "S2.bam").write_bytes(b"")
    (root / "S2.bam.bai").symlink_to(outside / "secret")
    (root / "r.fa").write_text(">c\nA\n")
    (root / "r.fa.fai").symlink_to(root / "r.fa")  # a link inside the root is fine
    config = ServiceConfig(data_roots=(DataRoot(str(tmp_path / "{project}"), True),))
    messages = _messages(config, _request(bam=str(root / "S1.bam"), ref=str(root / "r.fa"),
                                          out=str(root / "linked" / "out")))
    assert "symbolic link" in messages["experimental_inputs[0]"]
    assert "symbolic link" in messages["output_dir"]
    assert "ref" not in messages
    companion = _messages(config, _request(bam=str(root / "S2.bam")))
    assert "its index S2.bam.bai is a symbolic link" in companion["experimental_inputs[0]"]


def test_relative_and_dotdot_paths(tmp_path):
    config = ServiceConfig(data_roots=(DataRoot(str(tmp_path / "{project}"), True),))
    messages = _messages(config, _request(bam="S1.bam", ref=f"{tmp_path}/../r.fa"))
    assert "not an absolute path" in messages["experimental_inputs[0]"]
    assert "'..' is not allowed" in messages["ref"]


def test_limits():
    config = ServiceConfig(limits={"max_body_bytes": 10, "max_inputs": 2,
                                   "max_option_length": 5, "max_queued": 1})
    request = {**_request(), "control_inputs": ["s3a://genes/x/C1.bam", "s3a://genes/x/C2.bam"],
               "fix_conf": "--no-gc", "call_conf": 7}
    messages = _messages(config, request)
    assert messages == {"experimental_inputs": "3 BAM files in all; this service takes at most 2",
                        "fix_conf": "7 characters; at most 5 are accepted"}


def test_object_roots_per_project(tmp_path):
    config = _config(tmp_path, object_roots=["s3a://genes/{project}/", "obs://refs/hg38/"])
    ok = _request(bam="s3://genes/lab-a/S1.bam", ref="obs://refs/hg38/r.fa",
                  out="s3a://genes/lab-a/out/", bed="s3a://genes/lab-a/t.bed")
    assert _messages(config, ok) == {}
    messages = _messages(config, _request(bam="s3a://genes/lab-b/S1.bam",
                                          ref="s3a://genes/lab-a/../lab-b/r.fa",
                                          out="obs://genes/lab-a/out/"))
    assert set(messages) == {"experimental_inputs[0]", "ref", "output_dir", "bed"}
    assert "object-storage folders of project lab-a: s3a://genes/lab-a/, obs://refs/hg38/" in \
        messages["experimental_inputs[0]"]
    assert "'..'" in messages["ref"]
    assert "writable object-storage folders of project lab-a: s3a://genes/lab-a/" in \
        messages["output_dir"]
    assert _messages(_config(tmp_path), _request()) == {}  # no object_roots: any URI
    for bad in (["/data"], "s3a://genes/x/", [{"path": "s3a://g/x/", "writable": "yes"}]):
        with pytest.raises(ConfigError, match="object_roots"):
            _config(tmp_path, object_roots=bad)


def test_object_roots_are_kept_apart_like_data_roots(tmp_path):
    """A shared object root is read-only; a writable one is split by project: no project
    writes, reads or blocks another's results there (as in a writable shared data root)."""
    config = _config(tmp_path, object_roots=["s3a://refs/hg38/",
                                             {"path": "s3a://results/all/", "writable": True}])
    shared_output = _request(ref="s3a://refs/hg38/r.fa", bam="s3a://results/all/lab-a/S1.bam",
                             bed="s3a://results/all/lab-a/t.bed", out="s3a://refs/hg38/out/")
    assert set(_messages(config, shared_output)) == {"output_dir"}  # read-only for everyone
    own = {**shared_output, "output_dir": "s3a://results/all/lab-a/out/"}
    assert _messages(config, own) == {}
    theirs = _messages(config, own, project="lab-b")  # lab-a's part: neither read nor written
    assert set(theirs) == {"experimental_inputs[0]", "bed", "output_dir"}
    assert "s3a://results/all/lab-b/" in theirs["output_dir"]
    assert _messages(config, {**own, "output_dir": "s3a://results/all/out/"}) != {}  # no project's
    tokens = [{"token": "a" * 16, "owner": "a", "projects": ["lab-a", "lab-a-x"]}]
    nested = _config(tmp_path, tokens=tokens, object_roots=[
        "s3a://results/{project}/", "s3a://results/lab-a/{project}/"])
    with pytest.raises(ConfigError, match="object_roots: project lab-a"):
        nested.prepare()


def test_shared_roots_are_read_only_unless_the_config_says(tmp_path):
    for folder in ("lab-a", "shared", "scratch"):
        (tmp_path / folder).mkdir()
    (tmp_path / "shared" / "S1.bam").write_bytes(b"")
    config = _config(tmp_path, tokens=[TOKEN_A], data_roots=[
        str(tmp_path / "{project}"), str(tmp_path / "shared"),
        {"path": str(tmp_path / "scratch"), "writable": True}])
    assert [(root.path.endswith("{project}"), root.writable) for root in config.data_roots] == [
        (True, True), (False, False), (False, True)]
    config.prepare()
    read = _request(bam=str(tmp_path / "shared" / "S1.bam"), out=str(tmp_path / "lab-a" / "o"))
    assert _messages(config, read) == {}  # a shared root's files may be read
    into_shared = _messages(config, {**read, "output_dir": str(tmp_path / "shared" / "o")})
    assert into_shared == {"output_dir": f"{tmp_path}/shared/o: is in a data root that is "
                           f"read-only for project lab-a; results may be written under: "
                           f"{tmp_path}/lab-a, {tmp_path}/scratch/lab-a"}
    assert _messages(config, {**read, "output_dir": str(tmp_path / "scratch" / "lab-a")}) == {}
    (tmp_path / "lab-a" / "to-shared").symlink_to(tmp_path / "shared")
    linked = _messages(config, {**read, "output_dir": str(tmp_path / "lab-a" / "to-shared")})
    assert "symbolic link (or inside one) that leads outside" in linked["output_dir"]


TOKEN_A = {"token": "token-of-lab-a-0123", "owner": "alice", "projects": ["lab-a"]}
TOKEN_B = {"token": "token-of-lab-b-0123", "owner": "bob", "projects": ["lab-b"]}


def test_a_writable_shared_root_gives_each_project_a_folder_of_its_own(tmp_path):
    """In a writable shared root each project reads and writes only in `<root>/<project>`,
    made when the service starts: lab-b can neither read lab-a's results nor write (or claim)
    its folder, and the shared part itself is no one's."""
    results, refs = tmp_path / "results", tmp_path / "refs"
    results.mkdir()
    config = _config(tmp_path, tokens=[TOKEN_A, TOKEN_B], data_roots=[
        str(refs), {"path": str(results), "writable": True}])
    assert config.roots("lab-b").readable == (refs, results / "lab-b")
    assert config.roots("lab-b").writable == (results / "lab-b",)
    config.prepare()
    assert sorted(p.name for p in results.iterdir()) == ["lab-a", "lab-b"]
    (results / "lab-a" / "run" / "S1.bam").parent.mkdir()
    (results / "lab-a" / "run" / "S1.bam").write_bytes(b"lab-a's result")
    (results / "loose.bam").write_bytes(b"")
    own = _request(bam=str(results / "lab-a" / "run" / "S1.bam"),
                   out=str(results / "lab-a" / "run" / "again"))
    assert _messages(config, own) == {}  # lab-a reads and writes its own part
    for project in ("lab-b", "lab-c"):  # lab-c: no token names it, so it has no folder
        theirs = _messages(config, own, project)
        assert set(theirs) == {"experimental_inputs[0]", "output_dir"}
        assert theirs["output_dir"] == (f"{results}/lab-a/run/again: is outside the data roots; "
                                        "local paths must be inside the writable data roots of "
                                        f"project {project}: {results}/{project}")
    shared = _messages(config, _request(bam=str(results / "loose.bam"), out=str(results / "o")))
    assert set(shared) == {"experimental_inputs[0]", "output_dir"}
    assert "is outside the data roots" in shared["experimental_inputs[0]"]


def test_the_folders_of_a_writable_shared_root_are_checked_at_start(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "lab-a").symlink_to(tmp_path, target_is_directory=True)
    linked = _config(tmp_path, tokens=[TOKEN_A], data_roots=[
        {"path": str(results), "writable": True}])
    with pytest.raises(ConfigError, match="lab-a, the folder of project lab-a in .* is a "
                                          "symbolic link"):
        linked.prepare()
    missing = _config(tmp_path, tokens=[TOKEN_B], data_roots=[
        {"path": str(tmp_path / "nowhere"), "writable": True}])
    with pytest.raises(ConfigError, match="cannot make .*/nowhere/lab-b, the folder of project "
                                          "lab-b in .*: No such file or directory"):
        missing.prepare()
    nested = _config(tmp_path, tokens=[TOKEN_A, TOKEN_B], data_roots=[
        str(tmp_path / "{project}"), {"path": str(tmp_path / "lab-a" / "{project}")}])
    with pytest.raises(ConfigError, match="project lab-a writes in .*/lab-a and project lab-b "
                                          "in .*/lab-a/lab-b"):
        nested.prepare()


def test_the_state_dir_must_not_lie_in_a_data_root(tmp_path):
    config = _config(tmp_path, data_roots=["/data/{project}", "/shared",
                                           {"path": "/scratch", "writable": True}])
    assert config.could_hold(tmp_path / "x") is False
    assert config.could_hold(Path("/data/lab-a/state")) and config.could_hold(Path("/shared/s"))
    assert not config.could_hold(Path("/data/.state"))  # not a project id: no project's root
    assert config.could_hold(Path("/scratch/lab-a")) and config.could_hold(Path("/scratch/s/x"))
    assert not config.could_hold(Path("/scratch/.state"))  # no project's folder there
    # a root in the folder: /data/{project} in a state dir /data reaches /data/runs
    assert config.could_hold(Path("/data")) and config.could_hold(Path("/"))
    assert config.could_hold(Path("/scratch")) and not config.could_hold(Path("/dat"))


def test_fifos_and_folders_are_not_inputs(tmp_path):
    root = tmp_path / "lab-a"
    root.mkdir()
    os.mkfifo(root / "S1.bam")
    (root / "r.fa").mkdir()
    config = ServiceConfig(data_roots=(DataRoot(str(tmp_path / "{project}"), True),))
    messages = _messages(config, _request(bam=str(root / "S1.bam"), ref=str(root / "r.fa")))
    assert messages["experimental_inputs[0]"].endswith("is not a regular file (a FIFO, device "
                                                       "or socket)")
    assert messages["ref"].endswith("is a folder, not a file")
