"""Paths opened only inside the allowed roots, the store of private inputs, and publishing into a
local folder through descriptors (what the job service relies on against links and renames)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.paths import parse_location
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.launch import local_files
from cnvkit_nf.launch.input_store import InputStore
from cnvkit_nf.launch.local_files import (
    Input,
    content_problems,
    open_inputs,
    output_problem,
    views_of,
)
from cnvkit_nf.launch.submission import destination, plan
from cnvkit_nf.storage import confined, manifest, publish_local
from cnvkit_nf.storage.confined import Roots


@pytest.fixture
def site(tmp_path) -> dict[str, Path]:
    """lab-a (with a BAM and its index), lab-b (with a secret), a shared root."""
    lab_a, lab_b, shared = tmp_path / "lab-a", tmp_path / "lab-b", tmp_path / "shared"
    for folder in (lab_a / "run", lab_b, shared):
        folder.mkdir(parents=True)
    (lab_a / "run" / "S1.bam").write_bytes(b"lab-a's BAM")
    (lab_a / "run" / "S1.bam.bai").write_bytes(b"index")
    (lab_b / "S1.bam").write_bytes(b"lab-b's BAM")
    (shared / "ref.fa").write_text(">c\nACGT\n")
    return {"a": lab_a, "b": lab_b, "shared": shared}


def _read(path: Path, roots: tuple[Path, ...]) -> bytes:
    fd = confined.open_file(str(path), roots)
    with open(fd, "rb") as handle:
        return handle.read()


def _refusal(path: Path | str, roots: tuple[Path, ...]) -> str:
    with pytest.raises(confined.Refused) as refused:
        confined.open_file(str(path), roots)
    return str(refused.value)


def test_links_are_followed_only_inside_the_roots(site):
    a, b = site["a"], site["b"]
    roots = (a, site["shared"])
    (a / "same").symlink_to(a / "run" / "S1.bam")
    (a / "relative").symlink_to("run/S1.bam")
    (a / "to-shared").symlink_to(site["shared"] / "ref.fa")
    (a / "out").symlink_to(b / "S1.bam")
    (a / "dotdot").symlink_to("../lab-b/S1.bam")
    (a / "folder").symlink_to(b, target_is_directory=True)
    (a / "loop").symlink_to("loop")
    assert _read(a / "same", roots) == _read(a / "relative", roots) == b"lab-a's BAM"
    assert _read(a / "to-shared", roots) == b">c\nACGT\n"  # from one allowed root to another
    for escape in (a / "out", a / "dotdot", a / "folder" / "S1.bam"):
        assert _refusal(escape, roots) == ("is a symbolic link (or inside one) that leads "
                                           "outside the data roots")
    assert _refusal(b / "S1.bam", roots) == "is outside the data roots"
    assert _refusal(a / "loop", roots) == "has too many levels of symbolic links"
    assert _refusal(f"{a}/run/../../lab-b/S1.bam", roots) == "'..' is not allowed in paths"
    assert _refusal("run/S1.bam", roots) == "is not an absolute path"
    assert _refusal(a / "run", roots) == "is a folder, not a file"
    assert _refusal(a / "run" / "S1.bam" / "x", roots) == "S1.bam is not a folder"
    with pytest.raises(confined.Missing):
        confined.open_file(str(a / "run" / "nope.bam"), roots)


def test_a_fifo_is_refused_at_once(site):
    os.mkfifo(site["a"] / "pipe.bed")
    started = time.monotonic()
    assert _refusal(site["a"] / "pipe.bed", (site["a"],)) == ("is not a regular file (a FIFO, "
                                                              "device or socket)")
    assert time.monotonic() - started < 1


def test_an_open_file_stays_the_checked_one_after_a_swap(site):
    a, b = site["a"], site["b"]
    fd = confined.open_file(str(a / "run" / "S1.bam"), (a,))
    (a / "run").rename(a / "moved")
    (a / "run").symlink_to(b, target_is_directory=True)  # the path now leads to lab-b's BAM
    with open(fd, "rb") as handle:
        assert handle.read() == b"lab-a's BAM"


def test_folders_are_made_inside_the_writable_roots(site):
    a, b = site["a"], site["b"]
    fd = confined.open_folder(str(a / "new" / "deep"), (a,), create=True)
    os.close(fd)
    assert (a / "new" / "deep").is_dir()
    (a / "new" / "away").symlink_to(b, target_is_directory=True)
    with pytest.raises(confined.Outside):
        confined.open_folder(str(a / "new" / "away" / "out"), (a,), create=True)
    assert list(b.iterdir()) == [b / "S1.bam"]
    fd, missing = confined.deepest_folder(str(a / "new" / "x" / "y"), (a,))
    os.close(fd)
    assert missing == ["x", "y"] and not (a / "new" / "x").exists()


def _place(path: Path, roots: tuple[Path, ...]) -> str:
    fd, reached, missing = confined.located_folder(str(path), roots)
    os.close(fd)
    return os.path.join(reached, *missing)


def test_a_folder_is_located_by_its_one_real_path(site, tmp_path):
    """Whichever links inside the roots lead to a folder (or to where it would be made), the
    walk names it by one path, inside the roots; a link out of them is refused."""
    a, b = site["a"], site["b"]
    (a / "run" / "out").mkdir()
    (a / "here").symlink_to(a / "run", target_is_directory=True)
    (a / "there").symlink_to("run/out")
    (a / "later").symlink_to("run/new/deeper")  # dangling: where a folder would be made
    (tmp_path / "alias").symlink_to(a, target_is_directory=True)  # a root named by a link
    real = os.path.realpath(a)
    for root in (a, tmp_path / "alias"):
        roots = (root,)
        assert {_place(root / "run" / "out" / "x", roots),
                _place(root / "here" / "out" / "x", roots),
                _place(root / "there" / "x", roots)} == {f"{real}/run/out/x"}
        assert _place(root / "later", roots) == f"{real}/run/new/deeper"
    (a / "run" / "away").symlink_to(b, target_is_directory=True)
    with pytest.raises(confined.Outside):
        confined.located_folder(str(a / "run" / "away" / "out"), (a,))


def test_an_output_folder_is_claimed_only_inside_the_writable_roots(site):
    """The place a job claims (`destination`) is walked as publishing walks it: a link into
    another project's folder is refused, never recorded as a place in that project."""
    a, b = site["a"], site["b"]
    roots = Roots((a, site["shared"]), (a,), "project lab-a")
    (b / "results").mkdir()
    (a / "to-b").symlink_to(b / "results", target_is_directory=True)
    (a / "mine").symlink_to(a / "run", target_is_directory=True)
    place, problems = destination(parse_location(str(a / "to-b" / "out")), roots)
    assert place is None and [p.field for p in problems] == ["output_dir"]
    assert problems[0].message == (
        f"{a}/to-b/out: is a symbolic link (or inside one) that leads outside the data roots; "
        f"local paths must be inside the writable data roots of project lab-a: {a}")
    place, problems = destination(parse_location(str(a / "mine" / "out")), roots)
    assert (place, problems) == (f"{os.path.realpath(a)}/run/out/", [])
    place, problems = destination(parse_location(str(site["shared"] / "out")), roots)
    assert place is None and "read-only for project lab-a" in problems[0].message


def test_an_output_folder_swapped_between_check_and_claim_is_refused(small_cohort, tmp_path,
                                                                     monkeypatch):
    """The output folder is checked with the inputs, then claimed: swapped for a link into
    lab-b's folder between the two, the claim refuses it on output_dir."""
    lab_a, lab_b = tmp_path / "lab-a", tmp_path / "lab-b"
    shutil.copytree(small_cohort.ref.parent, lab_a / "cohort", copy_function=os.link)
    (lab_a / "out").mkdir()
    (lab_b / "results").mkdir(parents=True)
    cohort = lab_a / "cohort"
    validation = validate_request({
        "experimental_inputs": [str(cohort / "Sample_1.bam")],
        "control_inputs": [str(cohort / "Control_M.bam"), str(cohort / "Control_F.bam")],
        "ref": str(cohort / "reference.fa"), "bed": str(cohort / "targets.bed"),
        "output_dir": str(lab_a / "out")})
    assert validation.ok, validation.problems
    roots = Roots((lab_a,), (lab_a,), "project lab-a")
    checked, problems = plan(validation.request, None, roots)
    assert (checked.destination, problems) == (f"{os.path.realpath(lab_a)}/out/", [])
    check = local_files.check

    def check_then_swap(*args):
        found = check(*args)
        (lab_a / "out").rename(lab_a / "out.checked")
        (lab_a / "out").symlink_to(lab_b / "results", target_is_directory=True)
        return found

    monkeypatch.setattr(local_files, "check", check_then_swap)
    swapped, problems = plan(validation.request, None, roots)
    assert swapped.destination is None
    assert [(p.field, p.severity) for p in problems] == [("output_dir", "error")]
    assert "symbolic link (or inside one) that leads outside the data roots" in \
        problems[0].message


# --- the store of private inputs ---------------------------------------------------------------

def test_a_name_over_255_bytes_is_refused_not_raised(site):
    """The kernel's ENAMETOOLONG was raised as it came (a 500 from the service); a folder of
    such a name still to be made was not seen at all."""
    a = site["a"]
    long = "é" * 128  # 128 characters, 256 bytes
    said = f"a path component is longer than 255 bytes: {'é' * 40}... (256 bytes)"
    assert _refusal(a / long / "S1.bam", (a,)) == said
    assert _refusal(a / "run" / f"{long[:-1]}.bam", (a,)).endswith("(258 bytes)")
    for refused in (lambda: confined.deepest_folder(str(a / "new" / long / "out"), (a,)),
                    lambda: confined.open_folder(str(a / "new" / long), (a,), create=True)):
        with pytest.raises(confined.Refused, match="longer than 255 bytes"):
            refused()
    assert not (a / "new").exists()
    assert output_problem(str(a / long), Roots((a,), (a,), "lab-a")) == f"{a / long}: {said}"
    fine = "é" * 127  # 254 bytes: allowed
    os.close(confined.open_folder(str(a / fine), (a,), create=True))
    assert (a / fine).is_dir()


def _opened(site, roots: Roots | None = None) -> Input:
    request = {"experimental_inputs": [str(site["a"] / "run" / "S1.bam")], "control_inputs": []}
    [item], problems = open_inputs(validate_request(request).request,
                                   roots or Roots((site["a"],), (site["a"],)))
    assert problems == []
    return item


def _admit(store: InputStore, site) -> Path:
    item = _opened(site)
    try:
        return store.admit(item)
    finally:
        item.close()


def test_an_unchanged_input_keeps_its_private_path(site, tmp_path):
    store = InputStore(tmp_path / "store")
    bam = site["a"] / "run" / "S1.bam"
    linked = site["a"] / "run" / "linked.bam"  # the same file under another name
    os.link(bam, linked)

    def admit_linked() -> Path:
        item = Input(str(linked), [("linked.bam", os.open(linked, os.O_RDONLY))])
        try:
            return store.admit(item)
        finally:
            item.close()

    first, other = _admit(store, site), admit_linked()
    assert first == _admit(store, site) and other == admit_linked()  # what caching can match
    assert sorted(p.name for p in first.parent.iterdir()) == ["S1.bam", "S1.bam.bai"]
    assert other.name == "linked.bam" and other.resolve() == first.resolve()  # one object
    assert os.stat(first).st_ino == os.stat(bam).st_ino  # a hard link: no copy, no later swap
    assert os.stat(bam).st_nlink == 3  # linked once, however often and under whatever name


def test_a_rewritten_input_gets_a_new_entry(site, tmp_path):
    store = InputStore(tmp_path / "store")
    first = _admit(store, site)
    bam = site["a"] / "run" / "S1.bam"
    stamp = os.stat(bam)
    bam.write_bytes(b"lab-a's BAM")  # same size and content ...
    os.utime(bam, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # ... and mtime (touch -r)
    second = _admit(store, site)
    assert second != first  # the ctime tells the rewrite
    assert second.read_bytes() == b"lab-a's BAM"


def test_inputs_on_another_file_system_are_copied_read_only(site):
    if os.stat("/dev/shm").st_dev == os.stat(site["a"]).st_dev:
        pytest.fail("this test needs /dev/shm on another file system than the temp folder")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        store = InputStore(Path(shm))
        copy = _admit(store, site)
        bam = site["a"] / "run" / "S1.bam"
        assert copy.read_bytes() == bam.read_bytes()
        assert os.stat(copy).st_mode & 0o777 == 0o444
        assert os.stat(copy).st_mtime_ns == os.stat(bam).st_mtime_ns  # index freshness holds
        assert _admit(store, site) == copy  # copied once


def test_concurrent_admissions_share_one_entry(site, tmp_path):
    store = InputStore(tmp_path / "store")
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(_admit(store, site)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and all(path.read_bytes() == b"lab-a's BAM" for path in found)
    for home in (tmp_path / "store" / "entries", tmp_path / "store" / "objects"):
        assert not [p for p in home.iterdir() if p.name.startswith(".")]  # nothing half-made
    assert _admit(store, site) in found


# --- publishing into a local folder ------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_published_files_follow_the_umask(site, results, umask):
    previous = os.umask(umask)
    try:
        out = site["a"] / f"out-{umask:o}"
        roots = Roots((site["a"],), (site["a"],))
        assert publish_local.publish(results, str(out), roots).files == 4
    finally:
        os.umask(previous)
    assert manifest.verify(out) == []
    assert {p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()} == {0o666 & ~umask}
    assert {p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_dir()} == {0o777 & ~umask}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_publishing_never_writes_through_a_link(site, results):
    a, b = site["a"], site["b"]
    roots = Roots((a,), (a,))
    (a / "out").symlink_to(b, target_is_directory=True)
    with pytest.raises(publish_local.PublishError, match="leads outside the data roots"):
        publish_local.publish(results, str(a / "out"), roots)
    (a / "out2").mkdir()
    (a / "out2" / "samples").symlink_to(b, target_is_directory=True)  # planted below
    with pytest.raises(publish_local.PublishError, match="samples is a symbolic link"):
        publish_local.publish(results, str(a / "out2"), roots)
    assert sorted(p.name for p in b.iterdir()) == ["S1.bam"]
    assert sorted(p.name for p in (a / "out2").iterdir()) == ["samples"]  # nothing of ours
    (b / "manifest.json").write_text("lab-b's\n")
    with pytest.raises(publish_local.PublishError):
        publish_local.withdraw_manifest(str(a / "out"), roots)
    assert (b / "manifest.json").read_text() == "lab-b's\n"


def test_a_failed_publication_leaves_nothing_of_the_new_result(site, results):
    """A file too large to write (EFBIG under RLIMIT_FSIZE, as a full disk would fail) stops
    the publication: the folder keeps the earlier result's files, and nothing new. The big
    file has another name, so it is copied, not linked."""
    os.link(results / "big.bin", results.parent / "big.bin.shared")
    out = site["a"] / "out"
    (out / "samples").mkdir(parents=True)
    (out / "old.txt").write_text("an earlier result\n")
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from cnvkit_nf.storage import publish_local\n"
        "from cnvkit_nf.storage.confined import Roots\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        f"root, results = Path({str(site['a'])!r}), Path({str(results)!r})\n"
        "try:\n"
        f"    publish_local.publish(results, {str(out)!r}, Roots((root,), (root,)))\n"
        "except publish_local.PublishError as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "File too large" in done.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["old.txt", "samples"]


def test_contents_are_checked_through_the_opened_files(small_cohort, tmp_path):
    """The submission's content check reads the files that were opened inside the roots, even
    when their folder is replaced by a link into another project's folder before it reads."""
    lab_a, lab_b = tmp_path / "lab-a", tmp_path / "lab-b"
    lab_b.mkdir()
    shutil.copytree(small_cohort.ref.parent, lab_a / "cohort")
    (lab_b / "Sample_1.bam").write_text("lab-b's secret, not a BAM\n")
    request = {"experimental_inputs": [str(lab_a / "cohort" / "Sample_1.bam")],
               "control_inputs": [str(lab_a / "cohort" / "Control_M.bam")],
               "ref": str(lab_a / "cohort" / "reference.fa"),
               "bed": str(lab_a / "cohort" / "targets.bed"), "output_dir": str(lab_a / "out")}
    parsed = validate_request(request).request
    opened, problems = open_inputs(parsed, Roots((lab_a,), (lab_a,)))
    assert problems == []
    (lab_a / "cohort").rename(lab_a / "moved")
    (lab_a / "cohort").symlink_to(lab_b, target_is_directory=True)
    try:
        (tmp_path / "views").mkdir()
        views, descriptors = views_of(opened, tmp_path / "views")
        params = to_params(parsed, staged=views)
        found = content_problems(params, descriptors)
    finally:
        for item in opened:
            item.close()
    assert found == []  # lab-b's file was never read
    broken = content_problems(to_params(parsed))  # the paths, read now: lab-b's file
    assert any("Sample_1.bam: is a text file, not a BAM file" in p.message for p in broken)
