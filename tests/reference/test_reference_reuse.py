"""Reference reuse: a reference-only job, a reference named by `reference_cnn`, and the
references the launcher and the service keep between a project's jobs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cnvkit_nf.contract.params import reusing, to_params
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.reference.access import REUSED as ACCESS_REUSED
from cnvkit_nf.reference.cache import ReferenceCache, key_of
from scaffold.local_service import LocalService
from tests.conftest import launch, seed_request
from tests.pipeline.test_pipeline_e2e import called_copies, nextflow_run, read_table

TUMOUR = "Son_S2_ALL"
CALLS = (".cnr", ".cns", ".call.cns")
REUSED = "reference reused"
TOKENS = {"lab-a": "alice-token-0123456789", "lab-b": "bob-token-0123456789ab"}
JOBS = "/v2.0/{}/gene/tools/cnvkit"


def processes(out: Path) -> list[tuple[str, str]]:
    """(process, tag) of every task in a result's trace."""
    trace = read_table(out / "pipeline_info" / "trace.tsv")
    return [(row["process"].split(":")[-1], row["tag"]) for row in trace]


def same_calls(one: Path, other: Path) -> None:
    for suffix in CALLS:
        name = f"samples/{TUMOUR}/{TUMOUR}{suffix}"
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def write(path: Path, request: dict) -> Path:
    path.write_text(json.dumps(request))
    return path


# --- the request's rules --------------------------------------------------------------------

def test_the_extensions_rules_each_have_a_message(cohort, tmp_path):
    base = seed_request(cohort, tmp_path / "out")
    cases = [
        ({"reference_cnn": "old/reference.cnn"}, "control_inputs",
         "must be [] when reference_cnn is given"),
        ({"reference_cnn": "old/reference.txt", "control_inputs": []}, "reference_cnn",
         "must be a CNVkit reference ending in .cnn"),
        ({"reference_only": True}, "experimental_inputs",
         "must be [] when reference_only is true"),
        ({"reference_only": True, "experimental_inputs": [], "reference_cnn": "r.cnn"},
         "reference_cnn", "cannot be given with reference_only"),
        ({"experimental_inputs": []}, "experimental_inputs", "at least 1 BAM"),
    ]
    for changes, field, message in cases:
        found = {p.field: p.message for p in validate_request({**base, **changes}).problems
                 if p.severity == "error"}
        assert message in found.get(field, ""), (changes, found)
    assert validate_request({**base, "reference_only": True, "experimental_inputs": []}).ok
    assert validate_request({**base, "control_inputs": [], "reference_cnn": "a.cnn"}).ok


# --- a reference built earlier: what is refused, what is warned ----------------------------

@pytest.fixture(scope="module")
def built(seed_run) -> Path:
    """The reference folder of the seed-shaped job (reference.cnn, reference.json, BEDs)."""
    assert seed_run["result"].returncode == 0, seed_run["result"].stderr
    return seed_run["out"] / "reference"


def _check(check_inputs, cohort, reference: Path, ref: Path | None = None, **options):
    shaping = {"target_conf": "--split", "antitarget_conf": "-a 100000",
               "coverage_conf": "-q 10", "reference_conf": "--no-rmask"}
    report = check_inputs.check_inputs(ref or cohort.ref, None, {}, None, reference,
                                       {**shaping, **options})
    return ({p.message for p in report.problems if p.severity == "error"},
            {p.message for p in report.problems if p.severity == "warning"})


def test_a_reference_with_its_record_passes(check_inputs, cohort, built):
    found, warned = _check(check_inputs, cohort, built / "reference.cnn")
    assert not found and not warned
    found, _ = _check(check_inputs, cohort, built / "reference.cnn", target_conf="",
                      antitarget_conf="", reference_conf="")  # empty: as it was built
    assert not found


def test_refusals_of_a_reference(check_inputs, cohort, built, seed_run, tmp_path):
    coverage = tmp_path / "coverage" / "x.cnn"  # a sample's coverage is no reference
    coverage.parent.mkdir()
    shutil.copy(seed_run["out"] / "coverage" / f"{TUMOUR}.targetcoverage.cnn", coverage)
    found, _ = _check(check_inputs, cohort, coverage)
    assert any("is not a CNVkit reference: its header lacks the column(s) spread" in m
               for m in found), found

    other = tmp_path / "other" / "reference.cnn"  # a contig this FASTA lacks
    other.parent.mkdir()
    other.write_text((built / "reference.cnn").read_text().replace("chr2\t", "chr2_alt\t"))
    shutil.copy(built / "reference.json", other.parent)
    found, _ = _check(check_inputs, cohort, other)
    assert any("was built on other contigs" in m and "chr2_alt" in m for m in found), found

    fasta = tmp_path / "edited.fa"  # same contigs and lengths, one base changed
    data = bytearray(cohort.ref.read_bytes())
    at = data.index(b"A", len(data) // 2)
    data[at:at + 1] = b"C"
    fasta.write_bytes(bytes(data))
    found, _ = _check(check_inputs, cohort, built / "reference.cnn", ref=fasta)
    assert any("built on another FASTA" in m and "SHA-256 differs" in m for m in found), found

    found, _ = _check(check_inputs, cohort, built / "reference.cnn", coverage_conf="-q 20",
                      target_conf="--avg-size 100")
    assert any("coverage_conf '-q 20' contradicts the '-q 10'" in m for m in found), found
    assert any("target_conf '--avg-size 100' contradicts the '--split'" in m for m in found)
    found, _ = _check(check_inputs, cohort, built / "reference.cnn", coverage_conf="")
    assert any("coverage_conf '' contradicts" in m for m in found), found  # applied again


def test_a_reference_without_record_is_accepted_with_a_warning(check_inputs, cohort, built,
                                                              tmp_path):
    bare = tmp_path / "batch.cnn"  # as `cnvkit.py batch` leaves it: no record beside it
    shutil.copy(built / "reference.cnn", bare)
    found, warned = _check(check_inputs, cohort, bare, coverage_conf="-q 30")
    assert not found
    assert any("not checked: the FASTA's content, the target, antitarget, coverage and "
               "reference options it was built with, the CNVkit version" in m for m in warned)


def test_the_launcher_refuses_before_any_job(cohort, built, tmp_path):
    request = seed_request(cohort, tmp_path / "out", control_inputs=[],
                           reference_cnn=str(built / "reference.cnn"), coverage_conf="-q 20")
    result = launch(["run", str(write(tmp_path / "r.json", request))], tmp_path / "state")
    assert result.returncode == 1
    assert "reference_cnn: " in result.stderr and "cannot be reused: coverage_conf" in \
        result.stderr
    assert "nothing was run" in result.stderr and not (tmp_path / "out").exists()


# --- jobs that reuse ----------------------------------------------------------------------

def test_a_second_job_reuses_the_kept_reference(seed_run, cohort, tmp_path):
    """The same request again: no control coverage, no reference task; the same calls."""
    request = {**seed_run["request"], "output_dir": str(tmp_path / "out")}
    result = launch(["run", str(write(tmp_path / "r.json", request))], seed_run["state"])
    assert result.returncode == 0, result.stderr
    assert REUSED in result.stderr
    ran = processes(tmp_path / "out")
    assert ("CNVKIT_COVERAGE", TUMOUR) in ran
    assert [task for task in ran if task[0] in ("CNVKIT_REFERENCE", "CHECK_INPUTS")] == []
    assert [tag for name, tag in ran if name == "CNVKIT_COVERAGE"] == [TUMOUR]
    same_calls(tmp_path / "out", seed_run["out"])
    assert "The reference was <b>reused</b>" in (tmp_path / "out" / "report.html").read_text()
    job_id = result.stdout.split()[1]
    status = json.loads(launch(["status", job_id, "--json"], seed_run["state"]).stdout)
    assert status["status"] == "FINISHED" and status["message"] is None
    assert status["warnings"][0].startswith(REUSED)
    listed = json.loads(launch(["cache", "list", "--json"], seed_run["state"]).stdout)
    assert listed["count"] == 1
    assert listed["references"][0]["controls"] == ["Father_S5_ALL", "Mather_S1_ALL"]


def test_reference_cnn_by_direct_nextflow_run(nextflow_bin, seed_run, built, tmp_path):
    """`nextflow run` with reference_cnn: the pipeline's own check reads the record, then the
    calls are those of the job that built the reference; a contradiction stops it first."""
    request = {**seed_run["request"], "control_inputs": [],
               "reference_cnn": str(built / "reference.cnn")}
    validation = validate_request(request)
    assert validation.ok, validation.problems
    params = to_params(validation.request, staged={request["output_dir"]:
                                                            tmp_path / "out"})
    (tmp_path / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, tmp_path, "-profile", "local",
                          "-params-file", str(tmp_path / "params.json"))
    assert result.returncode == 0, result.stdout
    ran = {name for name, _ in processes(tmp_path / "out")}
    assert "CHECK_INPUTS" in ran and "CNVKIT_REFERENCE" not in ran
    same_calls(tmp_path / "out", seed_run["out"])
    assert (tmp_path / "out" / "reference" / "reference.json").read_bytes() == \
        (built / "reference.json").read_bytes()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "params.json").write_text(json.dumps({**params, "coverage_conf": "-q 20",
                                                 "output_dir": str(bad / "out")}))
    result = nextflow_run(nextflow_bin, bad, "-profile", "local",
                          "-params-file", str(bad / "params.json"))
    assert result.returncode != 0
    assert "cannot be reused: coverage_conf '-q 20' contradicts the '-q 10'" in result.stdout
    assert {name for name, _ in processes(bad / "out")} == {"CHECK_INPUTS"}


def test_a_reference_only_job_publishes_the_reference(seed_run, built, tmp_path):
    request = {**seed_run["request"], "experimental_inputs": [], "reference_only": True,
               "output_dir": str(tmp_path / "out")}
    result = launch(["run", str(write(tmp_path / "r.json", request))], tmp_path / "state")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for name in ("reference.cnn", "targets.bed", "antitargets.bed", "reference.json"):
        assert (out / "reference" / name).read_bytes() == (built / name).read_bytes(), name
    assert not (out / "samples").exists() and not (out / "report.html").exists()
    assert launch(["verify", str(out)], tmp_path / "state").returncode == 0  # manifest, whole
    ran = processes(out)
    covered = " ".join(tag for name, tag in ran if name == "CNVKIT_COVERAGE").split()
    assert len(covered) == 2 and "CNVKIT_SAMPLE" not in [name for name, _ in ran]


# --- what identifies a reference's inputs -----------------------------------------------------

def _key(request: dict) -> str:
    validation = validate_request(request)
    return key_of(to_params(validation.request))


def test_the_key_changes_with_each_input_that_shapes_a_reference(cohort, tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(cohort.ref.parent, folder)
    request = seed_request(cohort, tmp_path / "out")
    request = json.loads(json.dumps(request).replace(str(cohort.ref.parent), str(folder)))
    first = _key(request)
    assert _key(request) == first
    assert _key({**request, "call_conf": "--center median"}) == first  # not a shaping step
    assert _key({**request, "coverage_conf": "-q 20"}) != first
    assert _key({**request, "target_conf": "--avg-size 200"}) != first

    control = Path(request["control_inputs"][0])
    info = control.stat()
    control.write_bytes(control.read_bytes())  # rewritten, same bytes, its mtime restored
    os.utime(control, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert control.stat().st_mtime_ns == info.st_mtime_ns
    rewritten = _key(request)
    assert rewritten != first
    os.utime(control)  # a new mtime
    touched = _key(request)
    assert touched not in (first, rewritten)
    size = control.stat().st_size
    with open(control, "r+b") as handle:  # new content, same size
        handle.seek(size // 2)
        handle.write(b"\0")
    assert control.stat().st_size == size
    changed = _key(request)
    assert changed not in (first, rewritten, touched)

    other = folder / "other.fa"  # another FASTA
    shutil.copy(request["ref"], other)
    shutil.copy(request["ref"] + ".fai", str(other) + ".fai")
    assert _key({**request, "ref": str(other)}) != changed


def test_the_key_of_rows_follows_the_pooled_controls_and_their_given_sexes(cohort, tmp_path):
    """Rows key the controls they pool, with their given sexes (the reference's -x follows
    them); a matched normal kept out of the pool is not among them; leave-one-out keeps none."""
    lists = seed_request(cohort, tmp_path / "out")
    rows = {k: v for k, v in lists.items() if not k.endswith("_inputs")}
    tumour, (father, mother) = lists["experimental_inputs"][0], lists["control_inputs"]
    samples = [{"bam": tumour, "role": "experimental"}, {"bam": father, "role": "control"},
               {"bam": mother, "role": "control"}]
    assert _key({**rows, "samples": samples}) == _key(lists)  # the same pool, no sex given
    sexed = [samples[0], {**samples[1], "sex": "male"}, {**samples[2], "sex": "female"}]
    assert _key({**rows, "samples": sexed}) != _key(lists)
    paired = [{**samples[0], "normal": "Father_S5_ALL"}, *samples[1:]]
    assert _key({**rows, "samples": paired}) == _key(lists)  # a normal joins the pool
    apart = _key({**rows, "samples": paired, "pool_matched_normals": False})
    assert apart == _key({**lists, "control_inputs": [mother]})
    germline = [{"bam": bam, "role": "experimental"} for bam in (tumour, father, mother)]
    assert _key({**rows, "samples": germline, "reference_mode": "leave-one-out"}) is None


def test_reusing_drops_the_pooled_controls_and_keeps_a_matched_normal_as_a_column():
    params = {"samples": [{"id": "T", "bam": "t.bam", "role": "experimental", "normal": "N"},
                          {"id": "N", "bam": "n.bam", "role": "control"},
                          {"id": "C", "bam": "c.bam", "role": "control", "sex": "male"}],
              "pool_matched_normals": True}
    reused = reusing(params, "/kept/reference.cnn")
    assert [row["id"] for row in reused["samples"]] == ["T", "N"]
    assert (reused["pool_matched_normals"], reused["reference_cnn"]) == \
        (False, "/kept/reference.cnn")
    assert reusing({"control_inputs": ["c.bam"], "experimental_inputs": ["t.bam"]}, "r.cnn") \
        == {"control_inputs": [], "experimental_inputs": ["t.bam"], "reference_cnn": "r.cnn"}


def test_two_jobs_share_one_build(tmp_path):
    """The second waits while the first builds, then gets what the first kept."""
    cache = ReferenceCache(tmp_path / "references")
    source = tmp_path / "built"
    source.mkdir()
    for name in ("reference.cnn", "targets.bed", "antitargets.bed"):
        (source / name).write_text(name)
    (source / "reference.json").write_text('{"controls": ["N1"]}')
    builder = cache.acquire("lab-a", "k1")
    assert builder.entry is None
    waited, got = threading.Event(), []
    second = threading.Thread(target=lambda: got.append(
        cache.acquire("lab-a", "k1", waiting=waited.set)))
    second.start()
    assert waited.wait(10)
    other_project = cache.acquire("lab-b", "k1")  # never waits on, nor sees, another project
    assert other_project.entry is None
    time.sleep(1.5)
    assert not got  # still waiting for the build
    cache.keep("lab-a", "k1", source)
    builder.release()
    second.join(10)
    assert got and got[0].entry is not None
    assert got[0].entry.reference.read_text() == "reference.cnn"
    assert cache.entry("lab-b", "k1") is None

    gone = ReferenceCache(tmp_path / "references", max_bytes=0).prune()
    assert gone == []  # in use by the second job: kept
    got[0].release()
    assert [e.key for e in ReferenceCache(tmp_path / "references").prune(0)] == ["k1"]
    other_project.release()


def test_prune_keeps_the_most_recently_used_within_the_bound(tmp_path):
    root = tmp_path / "state"
    cache = ReferenceCache(root / "references")
    for number, key in enumerate(("old", "new")):
        source = tmp_path / key
        source.mkdir()
        for name in ("reference.cnn", "targets.bed", "antitargets.bed"):
            (source / name).write_bytes(bytes(1000))
        (source / "reference.json").write_text("{}")
        cache.keep("local", key, source)
        entry = cache.entry("local", key)
        os.utime(entry.folder, (1000 + number, 1000 + number))
    listed = json.loads(launch(["cache", "list", "--json"], root).stdout)
    assert [row["key"] for row in listed["references"]] == ["new", "old"]
    result = launch(["cache", "prune", "--max-size", "4K"], root)
    assert result.returncode == 0, result.stderr
    assert "removed old" in result.stdout
    assert [e.key for e in cache.entries()] == ["new"]


# --- a damaged entry is never reused --------------------------------------------------------

def _built_folder(folder: Path) -> Path:
    """A job's reference/ folder, as `keep` takes it (a reference.cnn of 1000 rows)."""
    folder.mkdir()
    (folder / "reference.cnn").write_text("chromosome\tstart\tend\tlog2\n" + "".join(
        f"chr1\t{i * 100}\t{i * 100 + 100}\t0.0{i % 10}\n" for i in range(1000)))
    for name in ("targets.bed", "antitargets.bed"):
        (folder / name).write_text(f"chr1\t0\t100\t{name}\n")
    (folder / "reference.json").write_text('{"controls": ["N1"]}')
    return folder


def _held_exclusively(lock_file: Path) -> bool:
    """Whether a job holds the key of this lock file exclusively (as its builder)."""
    with open(lock_file) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def _truncate(folder: Path) -> None:
    cnn = folder / "reference.cnn"
    cnn.write_bytes(cnn.read_bytes()[:cnn.stat().st_size // 2])


def _alter_a_byte(folder: Path) -> None:
    cnn = folder / "reference.cnn"
    data = bytearray(cnn.read_bytes())
    data[len(data) // 2] ^= 1
    cnn.write_bytes(bytes(data))


def _as_an_older_version_kept_it(folder: Path) -> None:
    meta = json.loads((folder / "entry.json").read_text())
    (folder / "entry.json").write_text(json.dumps({k: meta[k] for k in (
        "project", "key", "size", "created")}))


@pytest.mark.parametrize("damage, fault", [
    (_truncate, "reference.cnn: size differs from its record, 10903 bytes instead of 21807"),
    (_alter_a_byte, "reference.cnn: SHA-256 differs from its record"),
    (lambda folder: (folder / "targets.bed").unlink(), "targets.bed is missing"),
    (_as_an_older_version_kept_it, "entry.json records no size and SHA-256 of its files: kept "
                                   "by an older version of cnvkit-nf, it cannot be verified"),
    (lambda folder: (folder / "entry.json").write_bytes(b"\xff{"),
     "entry.json is not a JSON object"),
])
def test_a_damaged_entry_is_removed_and_built_again(tmp_path, damage, fault):
    cache = ReferenceCache(tmp_path / "references")
    source = _built_folder(tmp_path / "built")
    place = cache.keep("lab-a", "k1", source).folder.parent
    sound = cache.acquire("lab-a", "k1")
    assert sound.entry is not None and sound.warning is None  # intact: reused
    sound.release()

    damage(cache.entry("lab-a", "k1").folder)
    assert [e.key for e in cache.entries()] in (["k1"], [])  # `cache list` still reads them
    lease = cache.acquire("lab-a", "k1")
    assert lease.entry is None  # not reused: this job builds it
    assert lease.warning == (f"the kept reference k1 was corrupt ({fault}); it was removed "
                             "and this job builds the reference again")
    assert cache.entry("lab-a", "k1") is None and cache.entries() == []
    assert [p.name for p in place.iterdir()] == ["k1.lock"]  # removed whole
    assert _held_exclusively(place / "k1.lock")  # the builder's hold
    kept = cache.keep("lab-a", "k1", source)
    lease.release()
    again = cache.acquire("lab-a", "k1")
    assert again.entry is not None and again.entry.folder == kept.folder
    assert again.warning is None
    assert again.entry.reference.read_bytes() == (source / "reference.cnn").read_bytes()
    again.release()


def test_a_damaged_entry_in_use_is_removed_once_released(tmp_path):
    """A job that holds the entry shared is not disturbed: the next job waits for it."""
    cache = ReferenceCache(tmp_path / "references")
    cache.keep("lab-a", "k1", _built_folder(tmp_path / "built"))
    user = cache.acquire("lab-a", "k1")
    assert user.entry is not None
    _alter_a_byte(user.entry.folder)
    waited, got = threading.Event(), []
    second = threading.Thread(target=lambda: got.append(
        cache.acquire("lab-a", "k1", waiting=waited.set)))
    second.start()
    assert waited.wait(10)
    time.sleep(1.5)
    assert not got and user.entry.reference.is_file()  # still there for the job using it
    user.release()
    second.join(10)
    assert got and got[0].entry is None and "SHA-256 differs" in got[0].warning
    assert cache.entry("lab-a", "k1") is None
    got[0].release()


def test_a_half_made_entry_is_ignored_then_removed(tmp_path):
    """What a crash while keeping leaves: a hidden folder, never an entry; a prune removes it
    once no job holds its key."""
    root = tmp_path / "state"
    cache = ReferenceCache(root / "references")
    source = _built_folder(tmp_path / "built")
    half = cache.keep("lab-a", "k1", source).folder.with_name(".k2.0123abcd")
    half.mkdir()
    shutil.copy(source / "reference.cnn", half)
    assert [e.key for e in cache.entries()] == ["k1"]
    builder = cache.acquire("lab-a", "k2")  # a job holds k2 (as a keep in progress does)
    assert builder.entry is None  # the hidden folder is no entry
    assert cache.prune() == [] and half.is_dir()
    builder.release()
    assert cache.prune() == [] and not half.exists()
    listed = json.loads(launch(["cache", "list", "--json"], root).stdout)
    assert [row["key"] for row in listed["references"]] == ["k1"]


@pytest.mark.e2e
def test_a_corrupt_kept_reference_is_built_again(seed_run, cohort, tmp_path):
    """The seed run's kept reference, cut in half: the same request builds it again (a
    warning in its status and report), calls the planted events as a fresh build does, and
    keeps a sound entry that the next job reuses."""
    state = tmp_path / "state"
    shutil.copytree(seed_run["state"] / "references", state / "references")
    cache = ReferenceCache(state / "references")
    [entry] = cache.entries()
    rows = entry.reference.read_text().splitlines(keepends=True)
    entry.reference.write_text("".join(rows[:len(rows) // 2]))  # whole rows: still a table

    request = {**seed_run["request"], "output_dir": str(tmp_path / "out")}
    result = launch(["run", str(write(tmp_path / "r.json", request))], state)
    assert result.returncode == 0, result.stderr
    warning = (f"the kept reference {entry.key[:12]} was corrupt (reference.cnn: size differs "
               "from its record")
    assert f"warning: {warning}" in result.stderr and REUSED not in result.stderr
    status = json.loads(launch(["status", result.stdout.split()[1], "--json"], state).stdout)
    assert status["status"] == "FINISHED" and status["warnings"][0].startswith(warning)
    assert "it was removed and this job builds the reference again" in status["warnings"][0]
    assert f"Warning: {warning}" in (tmp_path / "out" / "report.html").read_text()
    assert "CNVKIT_REFERENCE" in {name for name, _ in processes(tmp_path / "out")}
    calls = tmp_path / "out" / "samples" / TUMOUR / f"{TUMOUR}.call.cns"
    son = next(spec for spec in cohort.samples if spec.name == TUMOUR)
    for event in son.events:
        assert called_copies(calls, event.chrom, event.start, event.end) == {event.copies}
    same_calls(tmp_path / "out", seed_run["out"])  # as the seed run's fresh build
    assert launch(["verify", str(tmp_path / "out")], state).returncode == 0

    [kept] = cache.entries()  # built again and kept whole
    assert kept.key == entry.key
    assert kept.reference.read_bytes() == \
        (seed_run["out"] / "reference" / "reference.cnn").read_bytes()
    request = {**request, "output_dir": str(tmp_path / "next")}
    result = launch(["run", str(write(tmp_path / "r2.json", request))], state)
    assert result.returncode == 0, result.stderr
    assert REUSED in result.stderr and "warning: the kept reference" not in result.stderr
    report = (tmp_path / "next" / "report.html").read_text()
    assert "The reference was <b>reused</b>" in report and "Warning:" not in report
    same_calls(tmp_path / "next", seed_run["out"])


# --- through the job service ------------------------------------------------------------------

@pytest.fixture(scope="module")
def service_site(tmp_path_factory, cohort, nextflow_bin):
    """A stub-running service with two workers; the cohort in a root both projects read."""
    base = tmp_path_factory.mktemp("reuse_site")
    shared = base / "shared"
    shutil.copytree(cohort.ref.parent, shared)
    for project in TOKENS:
        (base / "out" / project).mkdir(parents=True)
    config = base / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": token, "owner": project, "projects": [project]}
                   for project, token in TOKENS.items()],
        "data_roots": [str(shared), {"path": str(base / "out" / "{project}"), "writable": True}],
    }))
    state = base / "state"
    state.mkdir()
    service = LocalService(state, config, "--stub", "--concurrency", "2").start()
    yield {"service": service, "base": base, "shared": shared, "cohort": cohort}
    assert service.stop() == 0


def _request(site: dict, project: str, name: str) -> dict:
    """The seed-shaped request on the shared cohort, into the project's own folder."""
    request = seed_request(site["cohort"], site["base"] / "out" / project / name)
    return json.loads(json.dumps(request).replace(str(site["cohort"].ref.parent),
                                                  str(site["shared"])))


def _submit(site: dict, project: str, name: str) -> str:
    request = _request(site, project, name)
    status, body = site["service"].call("POST", JOBS.format(project), TOKENS[project], request)
    assert status == 201, body
    return body["instance_id"]


def _finished(site: dict, project: str, instance_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, body = site["service"].call(
            "GET", f"{JOBS.format(project)}?instance-id={instance_id}", TOKENS[project])
        assert status == 200, body
        job = body["instances"][0]
        if job["status"] in ("FINISHED", "FAILED", "CANCELLED"):
            assert job["status"] == "FINISHED", job["message"]
            return job
        time.sleep(0.5)
    raise AssertionError(f"{instance_id} did not end")


def _built(job: dict) -> bool:
    return "CNVKIT_REFERENCE" in {name for name, _ in processes(Path(job["output_dir"]))}


def test_the_service_reuses_within_a_project_only(service_site):
    site = service_site
    with ThreadPoolExecutor(2) as pool:  # two at once, the same inputs: one build
        ids = list(pool.map(lambda name: _submit(site, "lab-a", name), ("a1", "a2")))
    first, second = (_finished(site, "lab-a", i) for i in ids)
    assert sorted([_built(first), _built(second)]) == [False, True]
    reused = second if _built(first) else first
    assert reused["message"] is None and reused["warnings"][0].startswith(REUSED)
    assert {name for name, _ in processes(Path(reused["output_dir"]))} == {
        "CNVKIT_PREPARE", "CNVKIT_COVERAGE", "CNVKIT_SAMPLE", "CNVKIT_COHORT",
        "RESULT_MANIFEST"}  # no control coverage, no reference
    assert [tag for name, tag in processes(Path(reused["output_dir"]))
            if name == "CNVKIT_COVERAGE"] == [TUMOUR]

    theirs = str(Path(first["output_dir"]) / "reference" / "reference.cnn")  # lab-a's result
    status, answer = site["service"].call("POST", JOBS.format("lab-b"), TOKENS["lab-b"], {
        **_request(site, "lab-b", "b0"),
        "control_inputs": [], "reference_cnn": theirs})
    assert status == 400 and "reference_cnn" in answer["error_msg"]
    assert "data roots of project lab-b" in answer["error_msg"]

    other = _finished(site, "lab-b", _submit(site, "lab-b", "b1"))  # same files, lab-b
    assert _built(other) and other["message"] is None and other["warnings"] == []
    assert not set(ids) & set(json.dumps(other).split('"'))  # names no lab-a job

    control = site["shared"] / "Father_S5_ALL.sort.mkdup.bam"  # rewritten, mtime restored
    info = control.stat()
    control.write_bytes(control.read_bytes())
    os.utime(control, ns=(info.st_atime_ns, info.st_mtime_ns))
    again = _finished(site, "lab-a", _submit(site, "lab-a", "a3"))
    # a new reference; its accessible regions (the same FASTA, no access options) are kept ones
    assert _built(again) and again["warnings"] == [ACCESS_REUSED]
    digest = hashlib.sha256(b"lab-a").hexdigest()[:16]
    assert len(list((site["service"].state_dir / "references" / digest).glob("*/"))) == 2
