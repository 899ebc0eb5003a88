"""Which of a tumour's segments are calls, and which only the copy number its sex expects.

A segment is a call when its `cn` differs from what CNVkit's own `call` expects of the sample
(`cnvlib.call.absolute_expect`): the ploidy on autosomes; on chrX the ploidy in a female, half
in a male; on chrY none in a female, half the ploidy in a male. The sample's sex is the one
`call` used: given (`-x`), else inferred from the segments by CNVkit's `verify_sample_sex`
(with `-y` and `--diploid-parx-genome` as given). One chrX and one chrY copy in a male is
therefore an expected state, listed apart, not a call. Read by the report and by the
per-chromosome plots (bin/sample_plots.py), so both count the same calls.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path


def call_settings(call_options: str) -> argparse.Namespace:
    """`call`'s options (call_conf, then the sample's own) as CNVkit's parser reads them."""
    from cnvlib import commands  # noqa: PLC0415 - CNVkit's parser, only when asked

    return commands.parse_args(["call", "segments.cns", *shlex.split(call_options)])


@dataclass
class States:
    """A tumour's segments split by whether their copy number is the expected one."""

    sex: str  # "female" or "male", as call treated the sample
    sex_given: bool
    ploidy: int
    calls: list[dict[str, str]] = field(default_factory=list)
    expected: list[dict[str, str]] = field(default_factory=list)  # off ploidy, as sex expects
    columns: list[str] = field(default_factory=list)


def states(call_cns: Path, call_options: str) -> States:
    """Split `call_cns` (a `call` output) into calls and expected states (see the module)."""
    from cnvlib import call, cmdutil, read  # noqa: PLC0415

    args = call_settings(call_options)
    segments = read(str(call_cns))
    female = bool(cmdutil.verify_sample_sex(segments, args.sample_sex, args.male_reference,
                                            args.diploid_parx_genome))
    expect = call.absolute_expect(segments, args.ploidy, args.diploid_parx_genome, female)
    found = States("female" if female else "male", bool(args.sample_sex), args.ploidy,
                   columns=list(segments.data.columns))
    for row, expected in zip(segments.data.to_dict("records"), expect.to_numpy(), strict=True):
        cn = row.get("cn")
        if cn is None or cn != cn:  # no cn column, or NaN
            continue
        text = {key: _text(value) for key, value in row.items()}
        if int(cn) != int(expected):
            found.calls.append(text)
        elif int(cn) != args.ploidy:
            found.expected.append(text)
    return found


def _text(value) -> str:
    """A cell as CNVkit writes it: integers without a decimal point."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)
