"""Find a usable Nextflow, or install its published jars from Maven Central.

A `nextflow` on PATH is used when it is at least 24.10. Otherwise the core jars of the newest
24.10.x release that Maven Central publishes in full are resolved with Maven into `TOOLS/lib`
and run through the `TOOLS/nextflow` wrapper, with a class-data archive of the JVM
(`TOOLS/nextflow.jsa`, written from a `-stub` run of the pipeline) that makes every start about
a second shorter. `TOOLS` is `$CNVKIT_NF_NEXTFLOW_DIR` when set, a checkout's `tools/nextflow`,
else (an installed package) `nextflow/` in the user's cache folder, `~/.cache/cnvkit-nf`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cnvkit_nf.contract.option_cache import default_folder
from cnvkit_nf.pipeline_files import PIPELINE

SETTING = "CNVKIT_NF_NEXTFLOW_DIR"
_HERE = Path(__file__).resolve().parent  # cnvkit_nf/launch
_CHECKOUT_TOOLS = _HERE.parents[1] / "tools" / "nextflow"
CHECKOUT = (_CHECKOUT_TOOLS / "pom.xml").is_file()
# The wrapper and the Maven project that resolves the jars: a checkout's own, or the copy that
# the wheel ships (setup.py), which `install` puts into TOOLS.
SOURCE = _CHECKOUT_TOOLS if CHECKOUT else _HERE.parent / "nextflow_wrapper"


def _tools() -> Path:
    if os.environ.get(SETTING):
        return Path(os.environ[SETTING]).resolve()
    return SOURCE if CHECKOUT else default_folder() / "nextflow"


TOOLS = _tools()
WRAPPER = TOOLS / "nextflow"
STAMP = TOOLS / ".installed"
ARCHIVE = TOOLS / "nextflow.jsa"
MINIMUM = (24, 10)
# Newest first. 24.10.4-24.10.6 publish `nextflow` on Maven Central without the matching
# `nf-commons`/`nf-httpfs` jars, so they fail to resolve and 24.10.0 is taken.
CANDIDATES = ("24.10.6", "24.10.5", "24.10.4", "24.10.0")


class NextflowError(RuntimeError):
    """Nextflow could not be found or installed."""


def parse_version(text: str) -> tuple[int, ...] | None:
    """The `(major, minor, patch)` in `nextflow -version` output, if any."""
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else None


def version_of(command: str) -> tuple[int, ...] | None:
    """Ask a Nextflow executable its version; None when it does not answer."""
    try:
        out = subprocess.run(
            [command, "-version"], capture_output=True, text=True, timeout=120,
            env={**os.environ, "NXF_OFFLINE": "true"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(out.stdout + out.stderr)


def find() -> str | None:
    """A Nextflow >= 24.10: one on PATH first, then the wrapper over installed jars."""
    on_path = shutil.which("nextflow")
    if on_path and (version_of(on_path) or (0,)) >= MINIMUM:
        return on_path
    return str(WRAPPER) if _installed() else None


def _installed() -> bool:
    """Whether the stamp names a version whose jar is really in lib/."""
    if not STAMP.exists():
        return False
    return (TOOLS / "lib" / f"nextflow-{STAMP.read_text().strip()}.jar").exists()


def provide_wrapper() -> None:
    """Put the wrapper and the Maven project into TOOLS unless they are there (a checkout)."""
    if TOOLS != SOURCE:
        TOOLS.mkdir(parents=True, exist_ok=True)
        for name in ("nextflow", "pom.xml"):
            shutil.copy(SOURCE / name, TOOLS / name)  # with its mode: the wrapper is executable


def install(log=print) -> str:
    """Resolve the newest complete 24.10.x release into TOOLS/lib; return the wrapper."""
    if not shutil.which("mvn") or not shutil.which("java"):
        raise NextflowError(
            "installing Nextflow needs java (17+) and mvn: "
            "apt-get install -y default-jre-headless maven"
        )
    provide_wrapper()
    lib = TOOLS / "lib"
    failures = []
    for version in CANDIDATES:
        shutil.rmtree(lib, ignore_errors=True)
        log(f"resolving io.nextflow:nextflow:{version} from Maven Central ...")
        out = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(TOOLS / "pom.xml"), "dependency:copy-dependencies",
             f"-Dnextflow.version={version}", f"-DoutputDirectory={lib}"],
            capture_output=True, text=True,
        )
        if out.returncode == 0 and (lib / f"nextflow-{version}.jar").exists():
            STAMP.write_text(version + "\n")
            found = version_of(str(WRAPPER))
            if found and found[:2] >= MINIMUM:
                log(f"Nextflow {version} installed: {WRAPPER}")
                return str(WRAPPER)
            STAMP.unlink()
            failures.append(f"{version}: the jars resolved but `nextflow -version` failed")
            continue
        missing = re.findall(r"Could not find artifact (\S+)", out.stdout + out.stderr)
        failures.append(f"{version}: " + (", ".join(missing) or out.stdout[-500:]))
    raise NextflowError("no Nextflow 24.10.x release resolved:\n  " + "\n  ".join(failures))


def ensure(log=print) -> str:
    """Path of a usable Nextflow, installing it when there is none."""
    return find() or install(log)


# A -stub run of the pipeline takes ~15 s on 2 cores; one that has not ended by then is stalled.
ARCHIVE_RUN_SECONDS = 180


def _archive_run(partial: Path) -> tuple[str, int | None]:
    """One `-stub` run that writes the archive to `partial`: its output and its exit status,
    None when it had not ended within ARCHIVE_RUN_SECONDS and was killed with its tasks."""
    with tempfile.TemporaryDirectory(prefix="cnvkit-nf-archive-") as folder:
        run = subprocess.Popen(
            [str(WRAPPER), "run", str(PIPELINE), "-profile", "test_stub,local", "-stub",
             "--output_dir", f"{folder}/out", "-ansi-log", "false"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder,
            start_new_session=True,
            env={**os.environ, "NXF_OFFLINE": "true", "CNVKIT_NF_ARCHIVE_TO": str(partial),
                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
        try:
            return run.communicate(timeout=ARCHIVE_RUN_SECONDS)[0], run.returncode
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            return run.communicate()[0], None


def archive_classes(log=print) -> None:
    """Write the wrapper's class-data archive from a `-stub` run of the pipeline (what every
    run loads: config, script compiler, local executor, trace and reports), unless there is
    one; without it Nextflow only starts slower, so a failed run is said, not raised. A stalled
    run is tried once more (CI saw one stall in the local executor's queue, once)."""
    if ARCHIVE.exists() or not _installed():
        return
    log("writing the JVM class-data archive of the Nextflow wrapper ...")
    partial = ARCHIVE.with_name(f".{ARCHIVE.name}.{os.getpid()}")
    for _ in range(2):
        out, status = _archive_run(partial)
        if status == 0 and partial.exists():
            partial.replace(ARCHIVE)
            return
        partial.unlink(missing_ok=True)
        if status is not None:
            break
    said = out[-500:] if status is not None else f"the -stub run had not ended in " \
        f"{ARCHIVE_RUN_SECONDS} s, twice"
    log(f"no class-data archive (Nextflow starts slower): {said}")


def main(argv: list[str]) -> int:
    """`python -m cnvkit_nf.launch.nextflow install|path`: used by `make install`, and once after
    installing the package (see README, "Installing the package")."""
    try:
        if argv[:1] == ["install"]:
            ensure()
            archive_classes()
        elif argv[:1] == ["path"]:
            print(ensure(log=lambda m: print(m, file=sys.stderr)))
        else:
            print("usage: python -m cnvkit_nf.launch.nextflow install|path", file=sys.stderr)
            return 2
    except NextflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
