"""A samplesheet's text as sample rows: CSV or TSV by its name's extension, a header row naming
the columns (the keys of a request's samples row, `sample` for `id`, in any order), then one
row per BAM or CRAM file; an empty cell is a value not given.

Reading the file is the caller's (`cnvkit_nf.launch.samplesheets`: confined like every input,
at most MAX_BYTES, UTF-8); here only its text is read, and what is wrong is said by line and
column. The rows' own rules are the request schema's, and those across rows
`bin/sample_rows.py`'s (`request.validate_request` applies both).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from typing import Any

from cnvkit_nf.contract.problems import Problem

FIELD = "samplesheet"
ID_COLUMN = "sample"  # nf-core's name of a row's id
MAX_BYTES = 4 << 20  # 500 rows of long paths fit well; a larger file is not read
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?")
_INTEGER = re.compile(r"[+-]?\d{1,30}")


def column_of(key: str) -> str:
    """The sheet's column of a row's key."""
    return ID_COLUMN if key == "id" else key


def where(line: int, key: str | None = None) -> str:
    """How messages name a line of the sheet, or a cell: "samplesheet line 4, column vcf"."""
    return f"{FIELD} line {line}" + (f", column {column_of(key)}" if key else "")


def read_rows(text: str, name: str, row_schema: dict[str, Any], max_rows: int
              ) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    """The rows of a sheet named `name` (.tsv: tab-separated, else comma-separated) with their
    line numbers, keys as a request's row has them and cells typed as `row_schema` (the
    request's row definition) says; and every problem of the text's shape (the rows' values
    are left to the schema). More than `max_rows` rows are refused unread."""
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        return [], [Problem(where(line), "holds a NUL character: a samplesheet is CSV or TSV "
                                         "text")]
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""),
                        delimiter="\t" if name.endswith(".tsv") else ",", strict=True)
    keys, problems = None, []
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for cells in reader:
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if keys is None:
                keys, problems = _header(cells, row_schema, reader.line_num)
                if keys is None:
                    return [], problems
                continue
            if len(rows) == max_rows:
                return [], [Problem(FIELD, f"has more than {max_rows} rows (the most a request "
                                           "may have); split the cohort into several jobs")]
            if len(cells) != len(keys):
                problems.append(Problem(where(reader.line_num),
                                        f"has {len(cells)} cells, the header {len(keys)} "
                                        f"columns"))
                continue
            rows.append((reader.line_num, {
                key: _typed(cell, row_schema["properties"][key].get("type"))
                for key, cell in zip(keys, cells, strict=True) if key and cell}))
    except csv.Error as exc:
        return [], problems + [Problem(where(reader.line_num), f"is not CSV or TSV: {exc}")]
    if keys is None:
        return [], [Problem(FIELD, "is empty: it needs a header row naming its columns, e.g. "
                                   "sample,bam,role")]
    return rows, problems


def _header(cells: list[str], row_schema: dict[str, Any], line: int
            ) -> tuple[list[str | None] | None, list[Problem]]:
    """The row key of each column (None: a column not read) and the header's problems; no
    keys when a required column is missing (every row would say so)."""
    known = {column_of(key): key for key in row_schema["properties"]}
    keys: list[str | None] = []
    problems = []
    for cell in cells:
        if cell not in known:
            close = difflib.get_close_matches(cell, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(Problem(where(line), f"unknown column {cell!r}{hint}; the columns "
                                                 f"are {', '.join(known)}"))
        elif known[cell] in keys:
            problems.append(Problem(where(line), f"column {cell!r} is given more than once"))
        keys.append(known.get(cell) if known.get(cell) not in keys else None)
    missing = [column_of(key) for key in row_schema["required"] if key not in keys]
    problems += [Problem(where(line), f"has no column {name!r}, which is required")
                 for name in missing]
    return (None if missing else keys), problems


def _typed(cell: str, kind: str | None) -> Any:
    """A cell as the JSON value a samples row would give: numbers for number and integer
    columns when the cell is one (else the text, which the schema then refuses)."""
    if kind == "integer" and _INTEGER.fullmatch(cell):
        return int(cell)
    if kind == "number" and _NUMBER.fullmatch(cell):
        return float(cell)
    return cell
