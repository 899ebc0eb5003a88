"""Shared pytest fixtures."""

# --- simulate / check_inputs / annotation_to_bed fixtures: begin ---------------------------------
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package may not be pip-installed (e.g. bare `pytest`)
    sys.path.insert(0, str(ROOT))

from cnvkit_nf.launch import nextflow  # noqa: E402
from scaffold.demo import demo_request  # noqa: E402
from scaffold.simulate import Cohort, make_cohort, seed_like_cohort, standard_samples  # noqa: E402

SMALL_CHROM = 300_000  # autosome length of the shared test cohort
CHROM = 400_000  # autosome length of the seed-shaped cohort
LAUNCHER = ROOT / "bin" / "cnvkit-nf"


def load_script(name: str) -> ModuleType:
    """Import ``bin/<name>.py`` as a module (``bin/`` on the path: its scripts import each
    other)."""
    if str(ROOT / "bin") not in sys.path:
        sys.path.insert(0, str(ROOT / "bin"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "bin" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def nextflow_bin() -> str:
    """The Nextflow the launcher would use; the test fails (not skips) without one."""
    found = nextflow.find()
    if not found:
        pytest.fail("Nextflow is not installed: run `make install` (or "
                    "`.venv/bin/python -m cnvkit_nf.launch.nextflow install`)")
    return found


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """Controls Control_M/Control_F and Sample_1 (male, chr2 deletion, chr3 gain); 40k reads."""
    return make_cohort(
        tmp_path_factory.mktemp("cohort"),
        standard_samples(SMALL_CHROM, n_experimental=1),
        reads_per_sample=40_000,
        seed=7,
        chrom_length=SMALL_CHROM,
    )


@pytest.fixture(scope="session")
def check_inputs() -> ModuleType:
    """``bin/check_inputs.py`` as a module."""
    return load_script("check_inputs")


@pytest.fixture(scope="session")
def alignment_header() -> ModuleType:
    """``bin/alignment_header.py`` as a module."""
    return load_script("alignment_header")


@pytest.fixture(scope="session")
def reference_fasta() -> ModuleType:
    """``bin/reference_fasta.py`` as a module."""
    return load_script("reference_fasta")


@pytest.fixture(scope="session")
def annotation_to_bed() -> ModuleType:
    """``bin/annotation_to_bed.py`` as a module."""
    return load_script("annotation_to_bed")


# --- simulate / check_inputs / annotation_to_bed fixtures: end -----------------------------------


def seed_request(cohort: Cohort, output_dir: Path, **changes) -> dict:
    """The seed's example request, every path pointed at the generated cohort."""
    return {**demo_request(cohort.ref.parent, output_dir), **changes}


def launch(args: list[str], state: Path, **kwargs) -> subprocess.CompletedProcess:
    """`cnvkit-nf --state-dir STATE ARGS...`, its output captured."""
    return subprocess.run([str(LAUNCHER), "--state-dir", str(state), *args],
                          capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    """The seed's cohort shape: two controls, one tumour (Son_S2_ALL); 150k reads each."""
    return seed_like_cohort(tmp_path_factory.mktemp("seed_cohort"), reads_per_sample=150_000,
                            seed=3, chrom_length=CHROM)


@pytest.fixture(scope="session")
def seed_run(cohort, nextflow_bin, tmp_path_factory):
    """One launcher run of the seed-shaped request (all nine option strings); its state dir
    keeps the reference it built for reuse."""
    work = tmp_path_factory.mktemp("seed_run")
    request = seed_request(cohort, work / "results")
    request_file = work / "request.json"
    request_file.write_text(json.dumps(request))
    result = launch(["run", str(request_file)], work / "state", cwd=work)
    return {"work": work, "request": request, "request_file": request_file, "result": result,
            "out": work / "results", "state": work / "state"}


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where tests keep what a person may want to look at after a run (screenshots):
    $CNVKIT_NF_ARTEFACTS, else test-artefacts/ in the checkout."""
    folder = Path(os.environ.get("CNVKIT_NF_ARTEFACTS", ROOT / "test-artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (tests/browser.py); fails when it is missing."""
    try:
        from tests.browser import Browser
    except ImportError as err:  # websocket-client: a test tool, not in the runtime's .venv
        pytest.fail(f"{err.name} is missing: run `make test` (the tests run with .venv-test)")
    try:
        started = Browser()
    except RuntimeError as err:
        pytest.fail(str(err))
    yield started
    started.stop()
