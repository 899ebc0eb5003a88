"""Problems found in a request: where, what, and how bad."""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding; ``field`` is a JSON-path-like location ("" = the whole request)."""

    field: str
    message: str
    severity: str = "error"  # "error" or "warning"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """Return only the problems of severity "error"."""
    return [p for p in problems if p.severity == "error"]


def format_problem(p: Problem) -> str:
    """Render as "field: message", prefixed "warning: " for warnings."""
    text = f"{p.field}: {p.message}" if p.field else p.message
    return f"warning: {text}" if p.severity == "warning" else text


def summary(problems: Iterable[Problem]) -> str:
    """The errors among `problems` on one line, "; "-separated (for job messages, API errors)."""
    return "; ".join(format_problem(p) for p in errors(problems))
