"""Run a command and record its exit status in a file, so that a job service restarted while
Nextflow runs can still learn how the run ended.

    python supervise.py EXIT_FILE COMMAND [ARGS...]

Its own PID goes to EXIT_FILE's ".pid" sibling first, for whoever has to find the run again
(`state.layout.RunFolder.pid_file`; run as a script, which need not find the package, this
file derives it itself).

The supervisor shares the command's process group: a stop signal sent to the group reaches the
command, which decides how to end; the supervisor outlives the signal to write its status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def _ignore(signum: int, frame: object) -> None:
    """A no-op handler (not SIG_IGN, which the command would inherit)."""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: supervise.py EXIT_FILE COMMAND [ARGS...]", file=sys.stderr)
        return 2
    exit_file = Path(argv[0])
    exit_file.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ignore)
    returncode = subprocess.call(argv[1:])
    partial = exit_file.with_name(exit_file.name + ".part")
    partial.write_text(f"{returncode}\n")
    os.replace(partial, exit_file)
    return 0 if returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
