#!/usr/bin/env python3
"""Run a stage's CNVkit command lines in one Python interpreter, each as `cnvkit.py` runs it.

Usage: cnvkit_stage.py [--sex-of=CALL_OPTIONS] [--optional SUBCOMMAND,...]
                       [--words-from FILE] < COMMANDS
       (one `cnvkit.py SUBCOMMAND ...`, `reference2targets.py ...`, `bin_sizes.py ...` or
       `cnvkit_report.py ...` line each)

Each line is split as a shell would split it (no shell runs it), parsed by CNVkit's own parser
(`cnvlib.commands.parse_args`) and run by the function that parser names (`args.func(args)`):
exactly what `cnvkit.py` does, so the outputs are those of the same lines run one by one, while
CNVkit's imports (pandas, scipy, matplotlib...) are paid once per stage instead of once per
line. CNVkit's `reference2targets.py` script runs the same way, by its own parser and function,
and so does the job's report (`cnvkit_report.py`, beside this file), which reads call's options
with CNVkit's parser: in a process of its own it would pay CNVkit's imports again; so does
`bin_sizes.py` (beside this file: the bin sizes of a job, CNVkit's autobin).
Lines run in order; the first that fails ends the stage with its error (argparse's exit status
2, or 1 with the traceback). Blank lines and `#` comments are skipped.

Lines of an --optional subcommand (plots) may fail without ending the stage: the error is
logged, what the line had written to its output is removed, and the next line runs.

A `{sex}` word stands for the sex-chromosome options (-y, -x, --diploid-parx-genome) that
CNVkit's `call` parser reads in CALL_OPTIONS, so that plots and exports treat chrX and chrY as
the calls did. Plots are drawn with matplotlib's Agg backend (no display needed).

With --words-from FILE a later line can take a value an earlier line wrote: a word `{NAME}`
(the whole word, NAME of letters, digits and _) is replaced, when its line runs (not before:
an earlier line may write FILE), by the value of NAME in FILE, a JSON object: a list gives
its items as words (none for []), null no word, a string or number one word. A NAME the file
does not have ends the stage with an error. E.g. bin_sizes.py writes
`{"target_size": ["--avg-size", "267"], ...}` and the line
`cnvkit.py target BED --split {target_size} -o targets.bed` runs as
`cnvkit.py target BED --split --avg-size 267 -o targets.bed`. (Users' option strings cannot
hold `{` or `}`: only the pipeline's own words are replaced.)
"""

import argparse
import json
import logging
import os
import re
import shlex
import sys
import time

SEX_WORD = "{sex}"
SCRIPTS = ("cnvkit.py", "reference2targets.py", "cnvkit_report.py", "bin_sizes.py")
FILE_WORD = re.compile(r"\{(\w+)\}")  # a word replaced from --words-from's file


def sex_options(cnvkit, call_options: str) -> list[str]:
    """The -y/-x/--diploid-parx-genome settings of `call CALL_OPTIONS`, as options."""
    args = cnvkit.parse_args(["call", "segments.cns", *shlex.split(call_options)])
    words = ["-y"] if args.male_reference else []
    if args.sample_sex:
        words += ["-x", args.sample_sex]
    if args.diploid_parx_genome:
        words += ["--diploid-parx-genome", args.diploid_parx_genome]
    return words


def file_words(words: list[str], path: str | None) -> list[str]:
    """The words with each `{NAME}` word replaced by NAME's value in the JSON file `path`
    (read now): a list's items, no word for null, else the value as one word."""
    if not any(FILE_WORD.fullmatch(word) and word != SEX_WORD for word in words):
        return words
    if path is None:
        raise ValueError(f"{shlex.join(words)}: a {{NAME}} word needs --words-from FILE")
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle)
    replaced = []
    for word in words:
        found = FILE_WORD.fullmatch(word) if word != SEX_WORD else None
        if not found:
            replaced.append(word)
            continue
        if found.group(1) not in values:
            raise ValueError(f"{path} has no {found.group(1)!r} for the word {word}")
        value = values[found.group(1)]
        replaced += ([str(v) for v in value] if isinstance(value, list) else
                     [] if value is None else [str(value)])
    return replaced


def reference2targets(words: list[str]) -> None:
    """Run a `reference2targets.py` line: its parser reads `sys.argv`."""
    from cnvlib.cli import reference2targets as script  # noqa: PLC0415

    sys.argv = words
    script.reference2targets(script.argument_parsing())


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnvkit_stage.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sex-of", metavar="CALL_OPTIONS",
                        help="call's option string (write --sex-of=STRING: it starts with -), "
                             "whose sex options a {sex} word stands for")
    parser.add_argument("--optional", metavar="SUBCOMMAND,...", default="",
                        help="subcommands whose failure is logged and skipped")
    parser.add_argument("--words-from", metavar="FILE",
                        help="a JSON object whose values {NAME} words stand for, read when "
                             "their line runs")
    return parser.parse_args(argv)


def run_optional(words: list[str], args: argparse.Namespace) -> None:
    """Run an optional line; on failure log why and remove its partial output."""
    try:
        args.func(args)
    except Exception as err:  # noqa: BLE001 - any failure of a plot leaves the stage going
        output = getattr(args, "output", None)
        if output and os.path.lexists(output):
            os.unlink(output)
        print(f"  ({words[1]} failed, skipped: {type(err).__name__}: {err})", file=sys.stderr,
              flush=True)


def main(argv: list[str]) -> int:
    options = arguments(argv)
    call_options = options.sex_of
    optional = set(filter(None, options.optional.split(",")))
    commands = [words for line in sys.stdin if (words := shlex.split(line, comments=True))]
    wrong = [shlex.join(words) for words in commands if words[0] not in SCRIPTS]
    if wrong:
        print(f"cnvkit_stage.py: not a {' or '.join(SCRIPTS)} command line: {wrong[0]}",
              file=sys.stderr)
        return 2
    if call_options is None and any(SEX_WORD in words for words in commands):
        print(f"cnvkit_stage.py: {SEX_WORD} needs --sex-of=CALL_OPTIONS", file=sys.stderr)
        return 2
    os.environ["MPLBACKEND"] = "Agg"
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as cnvkit.py sets it
    from cnvlib import commands as cnvkit  # noqa: PLC0415 - the one slow import, once

    sex = sex_options(cnvkit, call_options) if call_options is not None else []
    for line in commands:
        words = [word for w in line for word in (sex if w == SEX_WORD else [w])]
        try:
            words = file_words(words, options.words_from)
        except (OSError, ValueError) as err:
            print(f"cnvkit_stage.py: {err}", file=sys.stderr)
            return 2
        print(f"$ {shlex.join(words)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        if words[0] == "reference2targets.py":
            reference2targets(words)
        elif words[0] == "bin_sizes.py":
            import bin_sizes  # noqa: PLC0415 - beside this script, on its path

            if status := bin_sizes.main(words[1:]):
                return status
        elif words[0] == "cnvkit_report.py":
            import cnvkit_report  # noqa: PLC0415 - beside this script, on its path

            if status := cnvkit_report.main(words[1:]):
                return status
        elif words[1] in optional:
            run_optional(words, cnvkit.parse_args(words[1:]))
        else:
            args = cnvkit.parse_args(words[1:])
            args.func(args)
        if pyplot := sys.modules.get("matplotlib.pyplot"):
            pyplot.close("all")  # as when each line's process ends: no figure leaks into the next
        name = words[1] if words[0] == "cnvkit.py" else words[0]
        print(f"  ({name}: {time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
