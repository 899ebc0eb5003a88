"""The option-string rules of `bin/cnvkit_options.py` for the package: the same checks the
pipeline's input check makes, with the package's `Problem`."""

from __future__ import annotations

from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.pipeline_files import BIN, load_bin

RULES = BIN / "cnvkit_options.py"
_rules = load_bin("cnvkit_options")
CheckedOptions = _rules.CheckedOptions
SUBSTEP_OF_FIELD = _rules.SUBSTEP_OF_FIELD
ALLOWED_CHARS = _rules.ALLOWED_CHARS
PIPELINE_CHAR_PATTERN = _rules.PIPELINE_CHAR_PATTERN
substep_parser = _rules.substep_parser
stage_options = _rules.stage_options
bin_size_plan = _rules.bin_size_plan
autobin_applies = _rules.autobin_applies
METHODS = _rules.METHODS


def check_options(field: str, text: str) -> tuple[CheckedOptions | None, list[Problem]]:
    """Validate one ``*_conf`` string with the real CNVkit parser of its substep."""
    checked, found = _rules.check_options(field, text)
    return checked, [Problem(*p) for p in found]


def check_all(request: dict, cache=None) -> tuple[dict[str, CheckedOptions], list[Problem]]:
    """Check all ten ``*_conf`` fields and the sex settings among them; `cache` is an
    `option_cache.OptionCache` of the parsers' earlier verdicts."""
    checked, found = _rules.check_all(request, cache)
    return checked, [Problem(*p) for p in found]
