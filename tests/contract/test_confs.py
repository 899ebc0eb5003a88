"""Option strings (``*_conf``) checked with CNVkit's real parsers."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cnvkit_nf.contract.confs import (
    PIPELINE_CHAR_PATTERN,
    SUBSTEP_OF_FIELD,
    check_all,
    check_options,
    substep_parser,
)
from cnvkit_nf.contract.option_cache import OptionCache

ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = ROOT / "tests" / "data" / "seed_request.json"
SEED_OPTIONS = {
    "target_conf": ("--split", "--split", None),
    "antitarget_conf": ("-a 100000", "-a 100000", None),
    "reference_conf": ("--no-rmask", "--no-rmask", None),
    "coverage_conf": ("-q 10 -p 5", "-q 10", 5),
    "fix_conf": ("--no-rmask", "--no-rmask", None),
    "segment_conf": (
        "-m cbs  --drop-low-coverage -t 0.001  --drop-outliers 5",
        "-m cbs --drop-low-coverage -t 0.001 --drop-outliers 5",
        None,
    ),
    "genemetrics_conf": (
        "--drop-low-coverage -a 0.001 -b 150 --mean",
        "--drop-low-coverage -a 0.001 -b 150 --mean",
        None,
    ),
    "call_conf": (
        "--center mean  --center-at 0 --drop-low-coverage",
        "--center mean --center-at 0 --drop-low-coverage",
        None,
    ),
    "sex_conf": ("-y", "-y", None),
}


def error_messages(field: str, text: str) -> list[str]:
    checked, problems = check_options(field, text)
    assert checked is None
    assert problems and all(p.severity == "error" and p.field == field for p in problems)
    return [p.message for p in problems]


@pytest.mark.parametrize("field", SEED_OPTIONS)
def test_seed_options_accepted(field: str) -> None:
    text, args, processes = SEED_OPTIONS[field]
    checked, problems = check_options(field, text)
    assert problems == []
    assert checked is not None
    assert (checked.substep, checked.args, checked.processes) == (
        SUBSTEP_OF_FIELD[field],
        args,
        processes,
    )
    assert re.fullmatch(PIPELINE_CHAR_PATTERN, checked.args)


def test_parsed_values_exposed() -> None:
    checked, _ = check_options("segment_conf", "-t 0.001 --drop-low-coverage")
    assert checked is not None
    assert checked.values["threshold"] == 0.001
    assert checked.values["drop_low_coverage"] is True
    assert "output" not in checked.values and "processes" not in checked.values


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("coverage_conf", "; rm -rf /", "';'"),
        ("coverage_conf", "$(touch /tmp/x)", "'$' '(' ')'"),
        ("call_conf", "`id`", "'`'"),
        ("coverage_conf", "-q 10 | cat", "'|'"),
        ("call_conf", "--center 'me an'", "' '"),
        ("call_conf", "-i ~/x", "'~'"),
        ("call_conf", "-i é", "'é'"),
        ("call_conf", "--center 'mean", "unbalanced quote"),
        ("call_conf", "-i ''", "empty argument"),
        ("call_conf", "--", "'--'"),
        ("call_conf", "--help", "-h/--help is not allowed"),
        ("fix_conf", "-h", "-h/--help is not allowed"),
        ("call_conf", "--he", "-h/--help is not allowed"),
        ("coverage_conf", "--outp=/etc/x", "-o/--output is set by the pipeline"),
        ("sex_conf", "-yo/x", "-o/--output is set by the pipeline"),
        ("segment_conf", "--rscript-path /bin/sh", "--rscript-path is set by the pipeline"),
        ("segment_conf", "--rscript-path Rscript", "--rscript-path is set by the pipeline"),
        ("coverage_conf", "--fasta x.fa", "-f/--fasta is set by the pipeline"),
        ("reference_conf", "-f x.fa", "-f/--fasta is set by the pipeline"),
        ("target_conf", "--annotate x", "--annotate is set by the pipeline"),
        ("antitarget_conf", "-g other.bed", "-g/--access is set by the pipeline"),
        ("segment_conf", "-d out.tsv", "-d/--dataframe is set by the pipeline"),
        ("fix_conf", "-r other.cnn", "-r/--reference is set by the pipeline"),
        ("call_conf", "--frobnicate", "unrecognized arguments: --frobnicate"),
        ("call_conf", "foo.bam", "unrecognized arguments: foo.bam"),
        ("reference_conf", "foo.bam --no-rmask", "unexpected argument(s) foo.bam"),
        ("sex_conf", "foo.cnn", "unexpected argument(s) foo.cnn"),
        ("coverage_conf", "-p 0", "positive integer, got 0"),
        ("coverage_conf", "-p -3", "positive integer, got -3"),
        ("segment_conf", "-p", "positive integer, got 0"),
        ("coverage_conf", "-p x", "invalid int value: 'x'"),
        ("coverage_conf", "-p 2147483648", "-p/--processes must be at most 1024, got "
                                           "2147483648"),
        ("segment_conf", "--processes=1025", "must be at most 1024"),
        ("coverage_conf", "-cp4", "write -p/--processes as a separate option"),
        ("call_conf", "-m nonsense", "invalid choice: 'nonsense'"),
    ],
)
def test_hostile_or_invalid_options_rejected(field: str, text: str, expected: str) -> None:
    messages = error_messages(field, text)
    assert any(expected in m for m in messages), messages


def test_nothing_was_executed(tmp_path: Path) -> None:
    existed = Path("/tmp/x").exists()
    for text in ("$(touch /tmp/x)", "`touch /tmp/x`", f"-q 1; touch {tmp_path}/x"):
        error_messages("coverage_conf", text)
    assert Path("/tmp/x").exists() == existed
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("text", "processes", "args"),
    [
        ("-q 10 -p 5", 5, "-q 10"),
        ("--processes=3 -c", 3, "-c"),
        ("-p2 -q 1", 2, "-q 1"),
        ("--processes 7", 7, ""),
        ("-q 1", None, "-q 1"),
    ],
)
def test_processes_taken_out(text: str, processes: int | None, args: str) -> None:
    checked, problems = check_options("coverage_conf", text)
    assert problems == [] and checked is not None
    assert (checked.processes, checked.args) == (processes, args)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("call_conf", "-t=-1.1,-0.25,0.2,0.7 --filter ci --filter cn"),
        ("genemetrics_conf", "--mean --median --ci -m 5"),
        ("segment_conf", "-m hmm -p 4 --smooth-cbs"),
        ("reference_conf", "'--no-gc' \"--cluster\" -x m"),
    ],
)
def test_args_round_trip(field: str, text: str) -> None:
    checked, problems = check_options(field, text)
    assert problems == [] and checked is not None
    tokens = shlex.split(text)
    if checked.processes:
        i = tokens.index("-p")
        del tokens[i : i + 2]
    assert shlex.split(checked.args) == tokens
    assert re.fullmatch(PIPELINE_CHAR_PATTERN, checked.args)


def test_pipeline_pattern_matches_token_whitelist() -> None:
    assert PIPELINE_CHAR_PATTERN == "[ A-Za-z0-9_.,=:+/%-]*"
    assert re.fullmatch(PIPELINE_CHAR_PATTERN, "-m cbs --drop-outliers 5 -x=a,b:c+d/e%f_g")
    for bad in ";$`|&<>()*?\\~'\"\t\né":
        assert not re.fullmatch(PIPELINE_CHAR_PATTERN, f"-i {bad}")


def test_sex_cross_check_is_a_warning() -> None:
    checked, problems = check_all({"sex_conf": "-y"})
    assert set(checked) == set(SUBSTEP_OF_FIELD)
    (warning,) = problems
    assert warning.severity == "warning" and warning.field == "sex_conf"
    for field in ("reference_conf", "genemetrics_conf", "call_conf"):
        assert field in warning.message
    assert "add -y" in warning.message


def test_sex_cross_check_consistent() -> None:
    request = dict.fromkeys(["sex_conf", "reference_conf", "genemetrics_conf", "call_conf"], "-y")
    assert check_all(request)[1] == []


def test_diploid_parx_genome_must_agree() -> None:
    _, problems = check_all({"reference_conf": "--diploid-parx-genome grch38"})
    (warning,) = problems
    assert warning.severity == "warning" and "--diploid-parx-genome" in warning.message
    assert "fix_conf" in warning.message and "segment_conf" in warning.message


def test_check_all_reports_every_field() -> None:
    _, problems = check_all({"call_conf": "--frobnicate", "fix_conf": "-o x", "sex_conf": 3})
    assert {p.field for p in problems} == {"call_conf", "fix_conf", "sex_conf"}


def test_which_substeps_have_sex_and_process_options() -> None:
    def having(dest: str) -> set[str]:
        return {
            step
            for step in SUBSTEP_OF_FIELD.values()
            if any(a.dest == dest for a in substep_parser(step)._actions)
        }

    assert having("male_reference") == {"reference", "call", "genemetrics", "sex"}
    assert having("diploid_parx_genome") == {
        "reference",
        "fix",
        "segment",
        "call",
        "genemetrics",
        "sex",
    }
    assert having("processes") == {"coverage", "segment"}


def test_accepted_strings_are_kept_and_refused_ones_parsed_again(tmp_path):
    request = {"coverage_conf": "-q 10 -p 5", "sex_conf": "-y", "fix_conf": "--frobnicate"}
    plain, plain_problems = check_all(request)
    first, first_problems = check_all(request, OptionCache(tmp_path))
    again = OptionCache(tmp_path)  # a later launcher run
    second, second_problems = check_all(request, again)
    assert first == second == plain and first_problems == second_problems == plain_problems
    assert again.get("coverage_conf", "-q 10 -p 5") == plain["coverage_conf"]
    assert again.get("fix_conf", "--frobnicate") is None  # refusals are never kept
    [kept] = tmp_path.iterdir()  # named after CNVkit's version and these rules
    assert kept.name.startswith("options-") and kept.suffix == ".json"


def test_a_warm_cache_spares_the_cnvlib_import(tmp_path):
    """What makes the launcher start in well under a second once a lab's options were seen."""
    script = ("import json, sys\n"
              "from cnvkit_nf.contract.option_cache import OptionCache\n"
              "from cnvkit_nf.contract.request import validate_file\n"
              f"validation = validate_file({str(SEED_FILE)!r}, OptionCache({str(tmp_path)!r}))\n"
              "print(json.dumps([validation.ok, 'cnvlib' in sys.modules]))\n")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout for _ in range(2)]
    assert [json.loads(run) for run in runs] == [[True, True], [True, False]]
