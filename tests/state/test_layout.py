"""The one layout fact known twice: supervise.py, run as a script without the package, derives
its PID file from the exit file itself; it must be where `RunFolder` says."""

from __future__ import annotations

import subprocess
import sys

from cnvkit_nf.launch.runner import SUPERVISE
from cnvkit_nf.state.layout import RunFolder


def test_the_supervisor_writes_where_the_run_folder_says(tmp_path):
    folder = RunFolder(tmp_path)
    subprocess.run([sys.executable, str(SUPERVISE), str(folder.exit_file), "true"], check=True,
                   cwd=tmp_path)
    assert folder.exit_file.read_text() == "0\n"
    assert int(folder.pid_file.read_text()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [folder.exit_file.name, folder.pid_file.name])
