"""What the storage tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnvkit_nf.storage import manifest


@pytest.fixture
def results(tmp_path) -> Path:
    """A finished result folder: two small files, a 3 MB one, its manifest."""
    folder = tmp_path / "results"
    (folder / "samples" / "S1").mkdir(parents=True)
    (folder / "samples" / "S1" / "S1.cnr").write_text("cnr\n")
    (folder / "sex.tsv").write_text("sex\n")
    (folder / "big.bin").write_bytes(os.urandom(3 << 20))
    manifest.write(folder, instance_id="test")
    return folder
