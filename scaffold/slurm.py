"""A single-node Slurm cluster on 127.0.0.1 for tests and `make demo PROFILE=slurm`: Debian's
munged, slurmctld and slurmd, configured in a folder of their own and started and stopped by
their PIDs. Clients (sbatch, squeue, scancel, and Nextflow through them) reach it through
SLURM_CONF, which `env()` gives."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
INSTALL = "`make test` (or scripts/install-system-deps.sh slurm: slurm-wlm and munge)"
NODE = "cnvkit-node"
# Two partitions of the one node: jobs go to `batch` unless they ask for `cnvkit`, so a test
# can tell that a queue setting reached sbatch.
PARTITIONS = ("batch", "cnvkit")


def _program(name: str) -> str | None:
    """Where a program is: on PATH, or in the sbin folders a user's PATH may lack."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                    "/sbin"]))


def missing_tools() -> list[str]:
    """The Slurm and MUNGE programs that are not installed."""
    return [name for name in DAEMONS + CLIENTS if not _program(name)]


def _free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _memory_mb() -> int:
    """The machine's memory in MB, as slurmd counts it (it refuses a node configured larger)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


@dataclass
class SlurmCluster:
    """munged + slurmctld + slurmd, one node of `cpus` CPUs, in `folder` (wiped at start).

    Finished jobs are kept in a job completion log (jobcomp/filetxt: without slurmdbd, `sacct`
    knows nothing), read by `completed_jobs()`. A job gets SIGTERM at its time limit and SIGKILL
    5 s later (KillWait), and SIGKILL when it uses more memory than it asked for
    (jobacct_gather/linux with OverMemoryKill, sampled every second).
    """

    folder: Path
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    munge: Path | None = None

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def nextflow_config(self) -> Path:
        """Nextflow settings for this cluster, to add with -c to `-profile slurm`."""
        return self.folder / "nextflow.config"

    @property
    def jobcomp_log(self) -> Path:
        return self.folder / "jobcomp.log"

    def env(self) -> dict[str, str]:
        """The environment variables that point Slurm's clients at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def render(self, ports: list[int]) -> str:
        """slurm.conf of this cluster."""
        user, host = getpass.getuser(), socket.gethostname().split(".")[0]
        folder = self.folder
        return "\n".join([
            "ClusterName=cnvkit-test",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge / 'munge.socket'}",
            f"StateSaveLocation={folder / 'ctld'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "DefMemPerCPU=1024",
            "MailProg=/bin/true",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp_log}",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",
            "KillWait=5",
            "OverTimeLimit=0",
            "ReturnToService=2",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={self.cpus} "
            f"RealMemory={_memory_mb()} State=UNKNOWN",
            f"PartitionName={PARTITIONS[0]} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName={PARTITIONS[1]} Nodes={NODE} Default=NO MaxTime=INFINITE State=UP",
            "",
        ])

    def start(self) -> SlurmCluster:
        """Generate a MUNGE key and the configuration, start the daemons, wait for an idle
        node."""
        missing = missing_tools()
        if missing:
            raise RuntimeError(f"Slurm is not installed (missing {', '.join(missing)}): "
                               f"run {INSTALL}")
        shutil.rmtree(self.folder, ignore_errors=True)
        for sub in ("ctld", "spool"):
            (self.folder / sub).mkdir(parents=True)
        # munged wants every folder above its socket open to all: one of its own under /tmp
        self.munge = munge = Path(tempfile.mkdtemp(prefix="cnvkit-munge-"))
        munge.chmod(0o755)
        subprocess.run([_program("mungekey"), "--create", "--keyfile", str(munge / "munge.key")],
                       check=True)
        self.conf.write_text(self.render(_free_ports(2)))
        self.nextflow_config.write_text(
            "// The node of scaffold/slurm.py's cluster; a task's end is noticed within seconds.\n"
            f"params {{\n    max_cpus   = {self.cpus}\n    max_memory = '{_memory_mb()}.MB'\n}}\n"
            "executor {\n    pollInterval      = '1 sec'\n    queueStatInterval = '2 sec'\n"
            "    exitReadTimeout   = '5 sec'\n}\n")
        env = {**os.environ, **self.env()}
        self._spawn("munged", [_program("munged"), "--foreground", f"--socket={munge}/munge.socket",
                               f"--key-file={munge}/munge.key", f"--pid-file={munge}/munged.pid",
                               f"--seed-file={munge}/munged.seed",
                               f"--log-file={self.folder / 'munged.log'}"], env)
        self._wait(lambda: (munge / "munge.socket").exists(), "munged did not create its socket")
        self._spawn("slurmctld", [_program("slurmctld"), "-D", "-f", str(self.conf)], env)
        self._spawn("slurmd", [_program("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)], env)
        self._wait(lambda: self.node_state() == "idle", "the Slurm node did not become idle")
        return self

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with open(self.folder / f"{name}.out", "ab") as log:
            self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=log,
                                                    stdin=subprocess.DEVNULL)

    def _wait(self, ready, failure: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = {name: process.returncode for name, process in self.processes.items()
                     if process.poll() is not None}
            if ended:
                self.stop()
                raise RuntimeError(f"{failure}: {ended} exited; see the logs in {self.folder}")
            if ready():
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{failure} within {timeout:.0f} s; see the logs in {self.folder}")

    def client(self, *command: str) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster, its output captured."""
        return subprocess.run(list(command), capture_output=True, text=True, timeout=60,
                              env={**os.environ, **self.env()})

    def node_state(self) -> str:
        """The node's state as sinfo reports it: idle, mixed, allocated, down..."""
        states = self.client("sinfo", "--noheader", "--node", NODE, "-o", "%T").stdout.split()
        return states[0] if states else ""

    def queue(self) -> list[dict[str, str]]:
        """The jobs pending, running or ending (what `squeue` shows): JobId, State, WorkDir."""
        listed = self.client("squeue", "--noheader", "-o", "%i %T %Z")
        if listed.returncode != 0:
            raise RuntimeError(f"squeue failed: {listed.stderr}")
        return [dict(zip(("JobId", "State", "WorkDir"), line.split(None, 2), strict=True))
                for line in listed.stdout.splitlines()]

    def completed_jobs(self) -> dict[str, dict[str, str]]:
        """Every ended job, by ID, as the job completion log records it (JobState, ExitCode,
        TimeLimit, Name, WorkDir, ...)."""
        if not self.jobcomp_log.exists():
            return {}
        jobs = {}
        for line in self.jobcomp_log.read_text().splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            jobs[fields["JobId"]] = fields
        return jobs

    def stop(self) -> None:
        """Cancel what is still queued (again while a Nextflow still running resubmits), then
        stop the daemons by their PIDs."""
        daemons = self.processes
        if all(p.poll() is None for p in daemons.values()) and len(daemons) == 3:
            deadline = time.monotonic() + 60
            while self.queue() and time.monotonic() < deadline:
                self.client("scancel", "--user", getpass.getuser())
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            process = daemons.get(name)
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.munge:
            shutil.rmtree(self.munge, ignore_errors=True)
