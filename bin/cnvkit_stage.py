#!/usr/bin/env python3
"""Run a stage's CNVkit command lines in one Python interpreter, each as `cnvkit.py` runs it.

Usage: cnvkit_stage.py [--sex-of=CALL_OPTIONS] [--optional SUBCOMMAND,...]
                       [--words-from FILE] [--jobs N] < COMMANDS
       (one `cnvkit.py SUBCOMMAND ...`, `reference2targets.py ...` or line of a script beside
       this one (BESIDE: `bin_sizes.py ...`, `cnvkit_report.py ...`...) each)

Each line is split as a shell would split it (no shell runs it), parsed by CNVkit's own parser
(`cnvlib.commands.parse_args`) and run by the function that parser names (`args.func(args)`):
exactly what `cnvkit.py` does, so the outputs are those of the same lines run one by one, while
CNVkit's imports (pandas, scipy, matplotlib...) are paid once per stage instead of once per
line. CNVkit's `reference2targets.py` script runs the same way, by its own parser and function,
and so does the job's report (`cnvkit_report.py`, beside this file), which reads call's options
with CNVkit's parser: in a process of its own it would pay CNVkit's imports again; so does
`bin_sizes.py` (beside this file: the bin sizes of a job, CNVkit's autobin), and
`annotation_to_bed.py` (the annotation's gene symbols), so that it can run in a block, and
the per-tumour plots and tables (`sample_plots.py`, `diagram_image.py`,
`genes_of_interest.py`), which draw or measure with CNVkit's own commands and treat each plot
as optional themselves.
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

Blocks (--jobs N): lines that are exactly `---` cut the input into blocks, independent runs of
lines, and a line that is exactly `===` is a barrier: every block before it finishes before any
block after it starts. A single block (no `---` nor `===`) runs in this process as described
above. Several blocks run each in a child forked from this process once CNVkit is imported (so
no child imports it again), up to N at once, in their order; a block's lines run in order as
above, `{sex}` and `{NAME}` words replaced when their line runs, in its block (a block's
`---` line may give it call options of its own, `--- --sex-of=CALL_OPTIONS`, which its `{sex}`
words then stand for: each tumour's block of a stage that calls several). Each child
writes to pipes this process reads: every line a block writes to stdout or stderr (its log,
CNVkit's, Rscript's, a traceback) is relayed to the same stream prefixed with `[block K] `, K
counting blocks from 1 in the input (so a block's outputs go to files, `-o`, not to stdout).
When a block fails (not on an --optional line) it names its line and status; no further block
starts, the running ones are stopped (their outputs would not be kept: the stage has failed, so
finishing them only delays the failure) and the stage exits with the failed line's status. On
SIGTERM, SIGINT or SIGHUP the running blocks are stopped (SIGTERM to each block's process
group, so Rscript goes too) and waited for, and the stage exits with 128 + the signal's number.
"""

import argparse
import collections
import functools
import importlib
import json
import logging
import os
import re
import selectors
import shlex
import signal
import sys
import time
import traceback

SEX_WORD = "{sex}"
# the job's own scripts beside this one, each run by its module's main(argv) -> status
BESIDE = {"cnvkit_report.py": "cnvkit_report", "bin_sizes.py": "bin_sizes",
          "annotation_to_bed.py": "annotation_to_bed", "sample_plots.py": "sample_plots",
          "diagram_image.py": "diagram_image", "genes_of_interest.py": "genes_of_interest"}
SCRIPTS = ("cnvkit.py", "reference2targets.py", *BESIDE)
FILE_WORD = re.compile(r"\{(\w+)\}")  # a word replaced from --words-from's file
BLOCK_END, BARRIER = "---", "==="
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def at_least_one(text: str) -> int:
    """--jobs' value: a whole number, 1 or more."""
    if (number := int(text)) < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


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
    parser.add_argument("--jobs", metavar="N", type=at_least_one, default=1,
                        help="blocks (cut by --- lines) run at once, each in a forked child "
                             "(default 1)")
    return parser.parse_args(argv)


class Block(list):
    """A block's command lines, split into words; `sex_of`: the call options its `---` line
    gave, or None."""

    sex_of: str | None = None


def read_blocks(lines) -> list[list[Block]]:
    """The command lines, split into words, as blocks (cut by `---` lines) in groups (cut by
    `===` barriers); blank lines, comments, empty blocks and empty groups are dropped."""
    groups: list[list[Block]] = [[Block()]]
    for line in lines:
        if (mark := line.strip()) == BARRIER:
            groups.append([Block()])
        elif mark.split(maxsplit=1)[:1] == [BLOCK_END]:
            groups[-1].append(Block())
            if given := shlex.split(mark)[1:]:
                if len(given) > 1 or not given[0].startswith("--sex-of="):
                    raise ValueError(f"a block's {BLOCK_END} line takes only "
                                     f"--sex-of=CALL_OPTIONS: {mark}")
                groups[-1][-1].sex_of = given[0].removeprefix("--sex-of=")
        elif words := shlex.split(line, comments=True):
            groups[-1][-1].append(words)
    return [blocks for group in groups if (blocks := [block for block in group if block])]


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


def run_line(line: list[str], cnvkit, sex: list[str], options: argparse.Namespace) -> int:
    """Run one command line, its `{sex}` and `{NAME}` words replaced now, as its script would;
    its exit status (a line's exception propagates)."""
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
    elif words[0] in BESIDE:  # on this script's path
        if status := importlib.import_module(BESIDE[words[0]]).main(words[1:]):
            return status
    elif words[1] in options.optional:
        run_optional(words, cnvkit.parse_args(words[1:]))
    else:
        args = cnvkit.parse_args(words[1:])
        args.func(args)
    if pyplot := sys.modules.get("matplotlib.pyplot"):
        pyplot.close("all")  # as when each line's process ends: no figure leaks into the next
    name = words[1] if words[0] == "cnvkit.py" else words[0]
    print(f"  ({name}: {time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return 0


def block_status(lines: list[list[str]], run) -> int:
    """Run a block's lines in order (in its child): the status of the first that fails, with
    its error and the line named on stderr; else 0."""
    for line in lines:
        try:
            status = run(line)
        except SystemExit as end:  # argparse's exit, its error already written
            status = end.code if isinstance(end.code, int) else 1
        except Exception:  # noqa: BLE001 - reported as Python reports an uncaught one
            traceback.print_exc()
            status = 1
        if status:
            print(f"cnvkit_stage.py: status {status} from: {shlex.join(line)}", file=sys.stderr,
                  flush=True)
            return status
    return 0


class Stopped(Exception):
    """The stage was sent a stop signal (its number is the argument)."""


def stopped(signum, _frame):
    raise Stopped(signum)


class Blocks:
    """Blocks run each in a child forked from this process, up to `jobs` at once, by
    `block_status(lines, run)`; their output relayed line by line, prefixed with the block."""

    def __init__(self, run, jobs: int):
        self.run, self.jobs = run, jobs
        self.running: dict[int, int] = {}  # a child's pid -> its block's number
        self.open_pipes: collections.Counter = collections.Counter()  # pid -> pipes not at EOF
        self.selector = selectors.DefaultSelector()

    def run_all(self, groups: list[list[Block]]) -> int:
        """Run the groups of blocks one group after another; the stage's exit status."""
        numbered = iter(range(1, sum(map(len, groups)) + 1))
        waiting = collections.deque()
        handlers = {signum: signal.signal(signum, stopped) for signum in STOP_SIGNALS}
        try:
            for group in groups:
                waiting.extend((next(numbered), block) for block in group)
                while waiting or self.running:
                    while waiting and len(self.running) < self.jobs:
                        self.start(*waiting.popleft())
                    number, status = self.next_end()
                    if status:
                        stopping = len(self.running)
                        self.stop()
                        print(f"cnvkit_stage.py: block {number} failed (status {status}); "
                              f"{stopping} running block(s) stopped, "
                              f"{len(waiting) + len(list(numbered))} not started",
                              file=sys.stderr, flush=True)
                        return status
        except Stopped as stop:
            self.stop()
            print(f"cnvkit_stage.py: stopped by {signal.Signals(stop.args[0]).name}",
                  file=sys.stderr, flush=True)
            return 128 + stop.args[0]
        finally:
            self.stop()  # after any other error too: no child outlives the stage
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        return 0

    def start(self, number: int, lines: list[list[str]]) -> None:
        """Fork a child running the block, in a process group of its own, its stdout and
        stderr each a pipe read here."""
        pipes = [os.pipe(), os.pipe()]
        sys.stdout.flush()
        sys.stderr.flush()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # till the pid is kept
        pid = os.fork()
        if pid == 0:
            self.child(lines, pipes, mask)
        try:
            os.setpgid(pid, pid)  # as the child does: whichever runs first
        except OSError:
            pass  # the child has already ended
        self.running[pid] = number
        self.open_pipes[pid] = 2
        prefix = f"[block {number}] ".encode()
        for (read, write), stream in zip(pipes, (sys.stdout, sys.stderr), strict=True):
            os.close(write)
            self.selector.register(read, selectors.EVENT_READ, [stream.buffer, prefix, b"", pid])
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def child(self, lines: list[list[str]], pipes, mask) -> None:
        """The forked child: run the block, its stdout and stderr the pipes; never returns."""
        status = 1
        try:
            os.setpgid(0, 0)
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for fd in self.selector.get_map():  # the other blocks' pipes
                os.close(fd)
            for (read, write), fd in zip(pipes, (1, 2), strict=True):
                os.dup2(write, fd)
                os.close(read)
                os.close(write)
            status = block_status(lines, self.run)
        except BaseException:  # noqa: BLE001 - the child must reach os._exit
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def next_end(self) -> tuple[int, int]:
        """Relay the children's output until one has ended: its block's number and its exit
        status (128 + the signal's number if a signal ended it)."""
        while True:
            for key, _ in self.selector.select():
                if pid := self.relay(key):
                    number = self.running.pop(pid)
                    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                    return number, code if code >= 0 else 128 - code

    def relay(self, key) -> int | None:
        """Copy what a pipe holds, whole lines prefixed, to its stream; the child's pid when
        this was the last of its pipes to end."""
        stream, prefix, partial, pid = key.data
        chunk = os.read(key.fd, 1 << 16)
        lines = (partial + chunk).split(b"\n")
        key.data[2] = b"" if not chunk else lines.pop()
        stream.write(b"".join(prefix + line + b"\n" for line in lines if line or chunk))
        stream.flush()
        if chunk:
            return None
        self.selector.unregister(key.fd)
        os.close(key.fd)
        self.open_pipes[pid] -= 1
        return pid if not self.open_pipes[pid] else None

    def stop(self) -> None:
        """Stop the running blocks (SIGTERM to each one's process group: its Rscript too) and
        wait for them, relaying what they wrote; stop signals are ignored meanwhile."""
        if not self.running:
            return
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        for pid in self.running:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # ended already: waited for below
        while self.running:
            self.next_end()


def main(argv: list[str]) -> int:
    options = arguments(argv)
    call_options = options.sex_of
    options.optional = set(filter(None, options.optional.split(",")))
    try:
        groups = read_blocks(sys.stdin)
    except ValueError as err:
        print(f"cnvkit_stage.py: {err}", file=sys.stderr)
        return 2
    commands = [words for blocks in groups for block in blocks for words in block]
    wrong = [shlex.join(words) for words in commands if words[0] not in SCRIPTS]
    if wrong:
        print(f"cnvkit_stage.py: not a {', '.join(SCRIPTS[:-1])} or {SCRIPTS[-1]} command "
              f"line: {wrong[0]}",
              file=sys.stderr)
        return 2
    if call_options is None and any(SEX_WORD in words for blocks in groups for block in blocks
                                    if block.sex_of is None for words in block):
        print(f"cnvkit_stage.py: {SEX_WORD} needs --sex-of=CALL_OPTIONS", file=sys.stderr)
        return 2
    os.environ["MPLBACKEND"] = "Agg"
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as cnvkit.py sets it
    from cnvlib import commands as cnvkit  # noqa: PLC0415 - the one slow import, once

    sex = sex_options(cnvkit, call_options) if call_options is not None else []
    for block in (block for blocks in groups for block in blocks if block.sex_of is not None):
        own = sex_options(cnvkit, block.sex_of)  # its {sex} words: its own call options'
        block[:] = [[word for w in line for word in (own if w == SEX_WORD else [w])]
                    for line in block]
    run = functools.partial(run_line, cnvkit=cnvkit, sex=sex, options=options)
    if sum(map(len, groups)) > 1:
        return Blocks(run, options.jobs).run_all(groups)
    for line in groups[0][0] if groups else []:  # one block: run here
        if status := run(line):
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
