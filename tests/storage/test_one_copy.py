"""One copy of the results (issue 26): a local publication and the caches hard link what they
may, copy what they must (another device, a file shared with something else), and never link
or copy through a results file swapped for a link."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from cnvkit_nf.reference.access import AccessCache
from cnvkit_nf.reference.cache import FILES, ReferenceCache
from cnvkit_nf.storage import confined, manifest, publish_local
from cnvkit_nf.storage.confined import everywhere


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _same(a: Path, b: Path) -> bool:
    one, other = os.stat(a), os.stat(b)
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _other_device(than: Path) -> Path:
    """A folder on another device than `than` (/dev/shm, a tmpfs): fails, not skips, without."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(than).st_dev:
        pytest.fail("needs /dev/shm on another device than the test's tmp folder (a tmpfs)")
    return Path(tempfile.mkdtemp(dir=shm))


def test_results_on_one_device_are_linked_and_verify(results, tmp_path):
    """The files the manifest covers are linked; the manifest and Nextflow's logs (which a
    rerun rewrites in place) are copied."""
    (results / "pipeline_info").mkdir()
    (results / "pipeline_info" / "trace.tsv").write_text("task_id\n")
    out = tmp_path / "out"
    done = publish_local.publish(results, str(out), everywhere())
    covered = ["big.bin", "samples/S1/S1.cnr", "sex.tsv"]
    assert (done.linked, done.copied) == (3, 2)
    assert done.linked_bytes == sum((results / name).stat().st_size for name in covered)
    assert _files(out) == _files(results)
    assert [name for name in _files(results) if _same(out / name, results / name)] == covered
    assert manifest.verify(out) == []


def test_a_file_with_another_link_is_copied_unless_that_link_is_disposable(results, tmp_path):
    """A results file sharing its inode with a file outside (an input, a cache entry) is
    copied: the output must not change with it. A link the caller is about to delete (the run's
    work dir) does not count."""
    elsewhere = tmp_path / "elsewhere.tsv"
    os.link(results / "sex.tsv", elsewhere)
    done = publish_local.publish(results, str(tmp_path / "out"), everywhere())
    assert (done.linked, done.copied) == (2, 2)
    assert not _same(tmp_path / "out" / "sex.tsv", elsewhere)
    assert manifest.verify(tmp_path / "out") == []
    shutil.rmtree(tmp_path / "out")  # else its links are another name of each results file
    info = os.stat(elsewhere)
    done = publish_local.publish(results, str(tmp_path / "out2"), everywhere(),
                                 disposable={(info.st_dev, info.st_ino)})
    assert (done.linked, done.copied) == (3, 1)
    assert _same(tmp_path / "out2" / "sex.tsv", elsewhere)
    assert manifest.verify(tmp_path / "out2") == []


def test_a_file_whose_mode_a_copy_would_not_have_is_copied(results, tmp_path):
    (results / "sex.tsv").chmod(0o600)
    previous = os.umask(0o022)
    try:
        done = publish_local.publish(results, str(tmp_path / "out"), everywhere())
    finally:
        os.umask(previous)
    assert (done.linked, done.copied) == (2, 2)
    assert (tmp_path / "out" / "sex.tsv").stat().st_mode & 0o777 == 0o644


def test_another_device_gets_copies(results):
    """An output_dir on a tmpfs (another st_dev): the hard link fails with EXDEV, each file is
    copied, and the copies verify against the manifest."""
    shm = _other_device(results)
    try:
        out = shm / "out"
        done = publish_local.publish(results, str(out), everywhere())
        assert (done.linked, done.copied) == (0, 4)
        assert done.copied_bytes == sum((results / n).stat().st_size for n in _files(results))
        assert manifest.verify(out) == []
    finally:
        shutil.rmtree(shm)


@pytest.mark.parametrize("when", ["file_in", "link"])
def test_a_results_file_swapped_for_a_link_is_neither_linked_nor_copied(results, tmp_path,
                                                                        monkeypatch, when):
    """sex.tsv is replaced on disk by a link to another lab's file after the listing checked
    it: right before it is opened (`file_in`), or after it was opened and before it is linked
    (`link`; the swap is made at that call, the race an attacker would win). The publication
    fails, and nothing of it, least of all the other lab's file, is left in the output."""
    secret = tmp_path / "lab-b.txt"
    secret.write_text("lab-b's\n")
    real = getattr(confined, when)

    def swapped_first(folder, name, *rest):
        if name == "sex.tsv":
            (results / "sex.tsv").unlink()
            (results / "sex.tsv").symlink_to(secret)
        return real(folder, name, *rest)

    monkeypatch.setattr(confined, when, swapped_first)
    out = tmp_path / "out"
    with pytest.raises(publish_local.PublishError,
                       match="symbolic link" if when == "file_in" else "changed while"):
        publish_local.publish(results, str(out), everywhere())
    assert list(out.iterdir()) == []
    assert secret.read_text() == "lab-b's\n" and os.stat(secret).st_nlink == 1


def _reference_files(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in FILES:
        (folder / name).write_text("{}\n" if name.endswith(".json") else f"{name}\n")
    return folder


def test_the_caches_link_what_the_results_alone_hold(tmp_path):
    """A kept entry shares the inode of a results file no one else holds; a file also linked
    into a user's output folder (which its user may change) is copied; so is one on another
    device. Every entry is reused: its files match their record."""
    made = _reference_files(tmp_path / "results" / "reference")
    references = ReferenceCache(tmp_path / "references")
    entry = references.keep("lab-a", "k1", made)
    assert all(_same(entry.folder / name, made / name) for name in FILES)
    again = _reference_files(tmp_path / "results2" / "reference")
    os.link(again / "reference.cnn", tmp_path / "user-output-reference.cnn")
    entry = references.keep("lab-a", "k2", again)
    assert not _same(entry.folder / "reference.cnn", again / "reference.cnn")
    assert _same(entry.folder / "targets.bed", again / "targets.bed")
    for key in ("k1", "k2"):
        lease = references.acquire("lab-a", key)
        assert lease.entry is not None and lease.warning is None
        lease.release()

    (made / "access.bed").write_text("chr1\t0\t10\n")
    accesses = AccessCache(tmp_path / "access")
    assert _same(accesses.keep("lab-a", "a1", made).file("access.bed"), made / "access.bed")
    shm = _other_device(tmp_path)
    try:
        elsewhere = _reference_files(shm / "reference")
        entry = references.keep("lab-a", "k3", elsewhere)
        assert not any(_same(entry.folder / name, elsewhere / name) for name in FILES)
        assert references.acquire("lab-a", "k3").entry is not None
    finally:
        shutil.rmtree(shm)
