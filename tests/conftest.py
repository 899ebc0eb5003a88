"""Shared pytest fixtures."""

# --- simulate / check_inputs / annotation_to_bed fixtures: begin ---------------------------------
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package may not be pip-installed (e.g. bare `pytest`)
    sys.path.insert(0, str(ROOT))

from cnvkit_nf import nextflow  # noqa: E402
from cnvkit_nf.simulate import Cohort, make_cohort, standard_samples  # noqa: E402

SMALL_CHROM = 300_000  # autosome length of the shared test cohort


def load_script(name: str) -> ModuleType:
    """Import ``bin/<name>.py`` as a module."""
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
                    "`.venv/bin/python -m cnvkit_nf.nextflow install`)")
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
def annotation_to_bed() -> ModuleType:
    """``bin/annotation_to_bed.py`` as a module."""
    return load_script("annotation_to_bed")


# --- simulate / check_inputs / annotation_to_bed fixtures: end -----------------------------------


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (tests/browser.py); fails when it is missing."""
    from tests.browser import Browser

    try:
        started = Browser()
    except RuntimeError as err:
        pytest.fail(str(err))
    yield started
    started.stop()
