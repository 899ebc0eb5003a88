"""The verdicts of CNVkit's parsers on option strings, kept across launcher runs.

Importing cnvlib to reach its parsers costs seconds (pandas, scipy, matplotlib), more than
everything else the launcher does before Nextflow starts. A string that CNVkit's parser of a
substep accepted is accepted again, with the same result, as long as neither CNVkit nor the
rules change: the cache file is named after both (CNVkit's version and the source of
`bin/cnvkit_options.py`), so any change starts a new one. Only accepted strings are kept; a
refused one is parsed again, and explained, every time. The job service does not use it: it
imports cnvlib once for all its requests.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.metadata
import json
import os
import uuid
from pathlib import Path

from cnvkit_nf.contract import confs


def default_folder() -> Path:
    """`$XDG_CACHE_HOME/cnvkit-nf`, else `~/.cache/cnvkit-nf`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnvkit-nf"


class OptionCache:
    """Accepted option strings by substep and text, in one JSON file of a folder."""

    def __init__(self, folder: Path):
        rules = hashlib.sha256(importlib.metadata.version("cnvkit").encode()
                               + confs.RULES.read_bytes()).hexdigest()[:16]
        self.path = Path(folder) / f"options-{rules}.json"
        self.entries: dict[str, dict] = {}
        with contextlib.suppress(OSError, ValueError):
            self.entries = dict(json.loads(self.path.read_text()))
        self.added = False

    def get(self, field: str, text: str) -> confs.CheckedOptions | None:
        entry = self.entries.get(self._key(field, text))
        try:
            return confs.CheckedOptions(field, entry["substep"], entry["args"],
                                        entry["processes"], ast.literal_eval(entry["values"]))
        except (KeyError, TypeError, ValueError, SyntaxError):
            return None  # not there, or not an entry this code wrote: parse again

    def put(self, text: str, checked: confs.CheckedOptions) -> None:
        values = repr(checked.values)  # Python literals keep their types (tuples stay tuples)
        try:
            if ast.literal_eval(values) != checked.values:
                return
        except (ValueError, SyntaxError):
            return  # a value that is no literal: parsed again next time
        self.entries[self._key(checked.field, text)] = {
            "substep": checked.substep, "args": checked.args, "processes": checked.processes,
            "values": values}
        self.added = True

    def save(self) -> None:
        """Write the file (under a temporary name, then renamed) if anything was added."""
        if not self.added:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written is no cache
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
            partial.write_text(json.dumps(self.entries))
            os.replace(partial, self.path)

    @staticmethod
    def _key(field: str, text: str) -> str:
        return f"{confs.SUBSTEP_OF_FIELD[field]}\0{text}"
