"""Where the job system keeps its files: the parts of a state dir, of a job's run folder and of
a run's results, named here once for every module that reads or writes them.

    <state dir>/              `cnvkit-nf --state-dir`, default ~/.cnvkit-nf (`StateDir`)
      jobs.sqlite             the job records (`jobs.JobStore`)
      runs/<instance id>/     a job's run folder (`RunFolder`)
      cache/<identity>/       object-storage inputs downloaded for jobs (`storage.objects`)
      inputs/                 the job service's private inputs (`InputStoreFolder`)
      references/             references kept between a project's jobs (`reference.cache`)
      access/                 accessible regions kept between a project's jobs
                              (`reference.access`)
      service.lock            flock: held by the one `cnvkit-nf serve` of the state dir
      retention.lock          flock: shared from the start of a job's staging until its run
                              started, exclusive while retention sweeps staged inputs
      clean.lock              flock: held by the one clean under way (`service.retention`)

    runs/<instance id>/       Nextflow's working directory
      params.json             the Nextflow params, written as the run starts: they name the
                              staged inputs the run reads
      nextflow.out            Nextflow's console output
      nextflow.exitcode       its exit status, written (through nextflow.exitcode.part) by its
                              supervisor, `launch/supervise.py`
      nextflow.pid            the supervisor's PID: the exit file's ".pid" sibling, which
                              supervise.py (run as a script, without this package) derives itself
      inputs/                 links into cache/ of the job's object-storage inputs
      work/                   Nextflow's work dir (unless `--work-dir`)
      .nextflow/history       Nextflow's session history: a run folder holding one is resumed
      results/                the run's output_dir (`Results`), published from there

The pipeline writes into any output_dir, and so into results/ (`Results`):
      pipeline_info/trace.tsv   Nextflow's trace (nextflow.config: `trace.file`)
      pipeline_info/tasks.txt   how many tasks the run has, as it starts (workflows/cnvkit.nf)
      reference/                the pooled reference built (modules/cnvkit/reference/main.nf)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path.home() / ".cnvkit-nf"


@dataclass(frozen=True)
class Results:
    """An output_dir as the pipeline writes it: a run folder's results/, or a published copy."""

    path: Path

    @property
    def trace(self) -> Path:
        return self.path / "pipeline_info" / "trace.tsv"

    @property
    def tasks_file(self) -> Path:
        return self.path / "pipeline_info" / "tasks.txt"

    @property
    def reference(self) -> Path:
        return self.path / "reference"

    @property
    def bin_sizes(self) -> Path:
        """The bin sizes the regions stage chose, and its warnings (`bin/bin_sizes.py`)."""
        return self.reference / "bin_sizes.json"


@dataclass(frozen=True)
class RunFolder:
    """A job's run folder (`Job.run_dir`)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a job records it as a string

    @property
    def params(self) -> Path:
        return self.path / "params.json"

    @property
    def nextflow_log(self) -> Path:
        return self.path / "nextflow.out"

    @property
    def exit_file(self) -> Path:
        return self.path / "nextflow.exitcode"

    @property
    def pid_file(self) -> Path:
        return self.exit_file.with_suffix(".pid")

    @property
    def inputs(self) -> Path:
        return self.path / "inputs"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def history(self) -> Path:
        return self.path / ".nextflow" / "history"

    @property
    def results(self) -> Results:
        return Results(self.path / "results")


@dataclass(frozen=True)
class InputStoreFolder:
    """The private input store (`launch.input_store`): objects, the files themselves; entries,
    folders of links to them named as requests name the files."""

    path: Path

    @property
    def objects(self) -> Path:
        return self.path / "objects"

    @property
    def entries(self) -> Path:
        return self.path / "entries"

    def object_link(self, name: str) -> Path:
        """What a file of an entry (entries/<identity>/<name>) links to for the object `name`:
        a relative path."""
        return Path("..", "..", self.objects.name, name)


@dataclass(frozen=True)
class StateDir:
    """A state dir: the job records, run folders, staged inputs, kept references and locks."""

    path: Path

    @property
    def jobs_db(self) -> Path:
        return self.path / "jobs.sqlite"

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def run(self, instance_id: str) -> RunFolder:
        return RunFolder(self.runs / instance_id)

    @property
    def staging_cache(self) -> Path:
        return self.path / "cache"

    @property
    def input_store(self) -> InputStoreFolder:
        return InputStoreFolder(self.path / "inputs")

    @property
    def references(self) -> Path:
        return self.path / "references"

    @property
    def access(self) -> Path:
        return self.path / "access"

    @property
    def service_lock(self) -> Path:
        return self.path / "service.lock"

    @property
    def retention_lock(self) -> Path:
        return self.path / "retention.lock"

    @property
    def clean_lock(self) -> Path:
        return self.path / "clean.lock"
