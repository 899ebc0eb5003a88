#!/usr/bin/env python3
"""Run a stage's CNVkit command lines in one Python interpreter, each as `cnvkit.py` runs it.

Usage: cnvkit_stage.py < COMMANDS   (one `cnvkit.py SUBCOMMAND ARGS...` line each)

Each line is split as a shell would split it (no shell runs it), parsed by CNVkit's own parser
(`cnvlib.commands.parse_args`) and run by the function that parser names (`args.func(args)`):
exactly what `cnvkit.py` does, so the outputs are those of the same lines run one by one, while
CNVkit's imports (pandas, scipy, matplotlib...) are paid once per stage instead of once per
line. Lines run in order; the first that fails ends the stage with its error (argparse's exit
status 2, or 1 with the traceback). Blank lines and `#` comments are skipped.
"""

import logging
import shlex
import sys
import time


def main() -> int:
    commands = [words for line in sys.stdin if (words := shlex.split(line, comments=True))]
    wrong = [shlex.join(words) for words in commands if words[0] != "cnvkit.py"]
    if wrong:
        print(f"cnvkit_stage.py: not a cnvkit.py command line: {wrong[0]}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as cnvkit.py sets it
    from cnvlib import commands as cnvkit  # noqa: PLC0415 - the one slow import, once

    for words in commands:
        print(f"$ {shlex.join(words)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        args = cnvkit.parse_args(words[1:])
        args.func(args)
        print(f"  ({words[1]}: {time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
