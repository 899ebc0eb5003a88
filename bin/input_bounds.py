"""Bounds on what the input checks read, so that a small crafted file cannot cost gigabytes.

A file may bring at most MAX_CONTIGS contig names of MAX_NAMES bytes in all, and a text line of
at most MAX_LINE characters: what a check costs does not grow with what a file unfolds into.
Standard library only (the pipeline runs the checks inside CNVkit containers).
"""

from collections.abc import Iterator
from typing import IO

MAX_CONTIGS = 100_000  # distinct contigs of a file (a genome has a few thousand at most)
MAX_NAMES = 8 << 20  # bytes of a file's distinct contig names, in all
MAX_LINE = 1 << 20  # a line of a BED, interval list, .fai, annotation or SAM header
CHUNK = 1 << 20  # bytes read (or unpacked) at a time


class TooLarge(ValueError):
    """A file brings more than this check reads."""


def admit_names(count: int, size: int) -> None:
    """Refuse (TooLarge) a file's `count`-th distinct contig name when they number more than
    MAX_CONTIGS or take more than MAX_NAMES bytes in all (`size`): each one costs the check
    memory, and no genome has that many."""
    if count > MAX_CONTIGS:
        raise TooLarge(f"has more than {MAX_CONTIGS} contigs, more than this check reads")
    if size > MAX_NAMES:
        raise TooLarge(f"has contig names of more than {MAX_NAMES >> 20} MiB in all, more "
                       "than this check reads")


class Contigs(dict):
    """`{contig: value}` of one file, its names bounded by `admit_names`."""

    size = 0  # bytes of the names

    def __setitem__(self, name: str, value: object) -> None:
        if name not in self:
            self.size += len(name)
            admit_names(len(self) + 1, self.size)
        super().__setitem__(name, value)


def text_lines(handle: IO[str]) -> Iterator[str]:
    """The lines of a text file; ValueError names a line longer than MAX_LINE characters."""
    for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE + 1), ""), 1):
        if len(line) > MAX_LINE:
            raise ValueError(f"line {number} is longer than {MAX_LINE} characters")
        yield line
