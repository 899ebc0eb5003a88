"""The class-data archive of the Nextflow wrapper (`launch.nextflow.archive_classes`): written
from a real `-stub` run; a run that stalls is killed with its children and tried once more, a
run that fails is said once; neither fails the install nor leaves a partial archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnvkit_nf.launch import nextflow


@pytest.fixture
def archive(tmp_path, monkeypatch) -> Path:
    """The archive's path, in tmp_path; the installed Nextflow otherwise."""
    if not nextflow._installed():
        pytest.fail("no installed Nextflow: run `make install`")
    path = tmp_path / "nextflow.jsa"
    monkeypatch.setattr(nextflow, "ARCHIVE", path)
    return path


def fake_wrapper(tmp_path: Path, monkeypatch, body: str) -> Path:
    """A wrapper script run in place of Nextflow's; each start appends a line to `starts`."""
    starts = tmp_path / "starts"
    wrapper = tmp_path / "nextflow"
    wrapper.write_text(f"#!/bin/sh\necho started >> '{starts}'\n{body}\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(nextflow, "WRAPPER", wrapper)
    return starts


def alive(pid: int) -> bool:
    """Whether the process runs (a killed one that no parent has reaped yet is a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_stub_run_writes_the_archive(archive):
    said: list[str] = []
    nextflow.archive_classes(log=said.append)
    assert archive.stat().st_size > 0, said
    assert said == ["writing the JVM class-data archive of the Nextflow wrapper ..."]
    assert list(archive.parent.glob(f".{archive.name}.*")) == []


def test_a_stalled_run_is_killed_with_its_children_and_tried_once_more(archive, tmp_path,
                                                                        monkeypatch):
    children = tmp_path / "children"
    starts = fake_wrapper(tmp_path, monkeypatch,
                          f"sleep 300 & echo $! >> '{children}'\nwait")
    monkeypatch.setattr(nextflow, "ARCHIVE_RUN_SECONDS", 1)
    said: list[str] = []
    nextflow.archive_classes(log=said.append)
    assert len(starts.read_text().splitlines()) == 2
    assert said[-1] == ("no class-data archive (Nextflow starts slower): the -stub run had not "
                        "ended in 1 s, twice")
    assert [pid for pid in map(int, children.read_text().split()) if alive(pid)] == []
    assert not archive.exists() and list(archive.parent.glob(f".{archive.name}.*")) == []


def test_a_failed_run_is_said_once(archive, tmp_path, monkeypatch):
    starts = fake_wrapper(tmp_path, monkeypatch, "echo 'ERROR ~ planted failure'\nexit 1")
    said: list[str] = []
    nextflow.archive_classes(log=said.append)
    assert len(starts.read_text().splitlines()) == 1
    assert said[-1] == ("no class-data archive (Nextflow starts slower): "
                        "ERROR ~ planted failure\n")
    assert not archive.exists()
