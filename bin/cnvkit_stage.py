#!/usr/bin/env python3
"""Run a stage's CNVkit command lines in one Python interpreter, each as `cnvkit.py` runs it.

Usage: cnvkit_stage.py [--sex-of=CALL_OPTIONS] [--optional SUBCOMMAND,...] < COMMANDS
       (one `cnvkit.py SUBCOMMAND ...`, `reference2targets.py ...` or `cnvkit_report.py ...`
       line each)

Each line is split as a shell would split it (no shell runs it), parsed by CNVkit's own parser
(`cnvlib.commands.parse_args`) and run by the function that parser names (`args.func(args)`):
exactly what `cnvkit.py` does, so the outputs are those of the same lines run one by one, while
CNVkit's imports (pandas, scipy, matplotlib...) are paid once per stage instead of once per
line. CNVkit's `reference2targets.py` script runs the same way, by its own parser and function,
and so does the job's report (`cnvkit_report.py`, beside this file), which reads call's options
with CNVkit's parser: in a process of its own it would pay CNVkit's imports again.
Lines run in order; the first that fails ends the stage with its error (argparse's exit status
2, or 1 with the traceback). Blank lines and `#` comments are skipped.

Lines of an --optional subcommand (plots) may fail without ending the stage: the error is
logged, what the line had written to its output is removed, and the next line runs.

A `{sex}` word stands for the sex-chromosome options (-y, -x, --diploid-parx-genome) that
CNVkit's `call` parser reads in CALL_OPTIONS, so that plots and exports treat chrX and chrY as
the calls did. Plots are drawn with matplotlib's Agg backend (no display needed).
"""

import argparse
import logging
import os
import shlex
import sys
import time

SEX_WORD = "{sex}"
SCRIPTS = ("cnvkit.py", "reference2targets.py", "cnvkit_report.py")  # the programs run


def sex_options(cnvkit, call_options: str) -> list[str]:
    """The -y/-x/--diploid-parx-genome settings of `call CALL_OPTIONS`, as options."""
    args = cnvkit.parse_args(["call", "segments.cns", *shlex.split(call_options)])
    words = ["-y"] if args.male_reference else []
    if args.sample_sex:
        words += ["-x", args.sample_sex]
    if args.diploid_parx_genome:
        words += ["--diploid-parx-genome", args.diploid_parx_genome]
    return words


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
        print(f"$ {shlex.join(words)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        if words[0] == "reference2targets.py":
            reference2targets(words)
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
