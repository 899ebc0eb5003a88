"""What the input checks find, and how they say it: problems (errors, warnings) and notes of
each file, named exactly as it was given, and findings cut to their first few examples.

Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

File = str | Path  # input files are reported exactly as they were given
EXAMPLES = 3  # findings of one kind shown in a message
MAX_SHOWN = 80  # characters of a name shown in a message


@dataclass
class Problem:
    """One finding about one input file."""

    file: str
    message: str
    severity: str  # "error" or "warning"


@dataclass
class Report:
    """Everything found so far: problems (errors, warnings) and informational notes."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    indexes: dict = field(default_factory=lambda: {"fai": False, "bai": {}})

    def error(self, file: str | Path, message: str) -> None:
        self.problems.append(Problem(str(file), message, "error"))

    def warning(self, file: str | Path, message: str) -> None:
        self.problems.append(Problem(str(file), message, "warning"))

    def note(self, file: str | Path, message: str) -> None:
        self.notes.append(f"{file}: {message}")

    @property
    def ok(self) -> bool:
        """True if no problem is an error."""
        return all(p.severity != "error" for p in self.problems)


def examples(names: Iterable[str], total: int | None = None) -> str:
    """The first few names (a long one cut short), and how many there are in all if more."""
    names = list(names)
    total = len(names) if total is None else total
    shown = ", ".join(n if len(n) <= MAX_SHOWN else f"{n[:MAX_SHOWN]}..." for n in names[:EXAMPLES])
    return shown if total <= EXAMPLES else f"{shown}, ... ({total} in all)"


@dataclass
class Tally:
    """How many findings of one kind, and the first few of them: a file with millions of bad
    lines costs the check no more than one with four."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, finding: str) -> None:
        self.count += 1
        if len(self.first) < EXAMPLES:
            self.first.append(finding)

    def __bool__(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return examples(self.first, self.count)


def readable(file: File, report: Report) -> bool:
    """Report a missing, unreadable or non-regular file; True if it can be read."""
    path = Path(file)
    if not path.exists():
        report.error(file, "does not exist")
    elif not path.is_file():
        report.error(file, "is not a regular file")
    elif not os.access(path, os.R_OK):
        report.error(file, "cannot be read (permission denied)")
    else:
        return True
    return False


def chr_hint(ours: Iterable[str], theirs: Iterable[str]) -> str:
    """A hint if the names only differ by a ``chr`` prefix."""
    stripped = {n.removeprefix("chr") for n in theirs}
    common = any(n.removeprefix("chr") in stripped for n in ours)
    return " (they differ in the 'chr' prefix)" if common else ""
