"""Build hook: a wheel carries the pipeline and the Nextflow wrapper as package data.

The pipeline's files stay at the repository root, where `nextflow run .` and Tower launches
need main.nf; the wheel gets a copy in `cnvkit_nf/pipeline/` (found by
cnvkit_nf/pipeline_files.py) and the wrapper with its Maven project in
`cnvkit_nf/nextflow_wrapper/` (see cnvkit_nf/launch/nextflow.py). Copies keep their modes, so bin/'s
scripts stay executable (Nextflow runs them from the task PATH). An editable install copies
nothing: it uses the checkout itself. The rest of the metadata is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PIPELINE = ("main.nf", "nextflow.config", "nextflow_schema.json", "tower.yml",
            "conf", "modules", "subworkflows", "workflows", "bin", "schema", "assets",
            "tests/data/stub")  # the placeholder inputs of the `test_stub` profile
CHECKOUT_ONLY = {"bin/cnvkit-nf"}  # the checkout's launcher; the wheel installs its own
WRAPPER = ROOT / "tools" / "nextflow"


def files_of(name: str) -> list[Path]:
    """A file, or the files below a folder (no byte-code), relative to the root."""
    path = ROOT / name
    if not path.exists():  # e.g. a build from an sdist, which does not carry the pipeline
        raise FileNotFoundError(f"{path}: build the wheel from a checkout")
    found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [p.relative_to(ROOT) for p in found
            if "__pycache__" not in p.parts and str(p.relative_to(ROOT)) not in CHECKOUT_ONLY]


class BuildPyWithPipeline(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        package = Path(self.build_lib) / "cnvkit_nf"
        for folder in ("pipeline", "nextflow_wrapper"):  # nothing left from an earlier build
            shutil.rmtree(package / folder, ignore_errors=True)
        copies = [(ROOT / f, package / "pipeline" / f) for name in PIPELINE for f in files_of(name)]
        copies += [(WRAPPER / name, package / "nextflow_wrapper" / name)
                   for name in ("nextflow", "pom.xml")]
        for source, target in copies:
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))  # preserve_mode: executable bits stay


setup(cmdclass={"build_py": BuildPyWithPipeline})
