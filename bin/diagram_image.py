#!/usr/bin/env python3
"""CNVkit's diagram as its PDF and as an SVG of the same drawing, for a web page.

Usage (a line of the per-tumour stage, run by cnvkit_stage.py; see modules/cnvkit/sample):
  diagram_image.py DIAGRAM_ARGUMENTS... -o PREFIX-diagram.pdf

Takes exactly `cnvkit.py diagram`'s arguments and runs it in this interpreter (its parser, its
function): the PDF is the one it writes. The reportlab Drawing it builds is kept by wrapping
`cnvlib.diagram.build_chrom_diagram` for the call (restored after), and rendered again by
reportlab's renderSVG (pure Python) to the PDF's name with `.svg`. Optional, as a plot: when
either fails the error is named on stderr, partial files are removed, and the status is 0.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from cnvlib import commands, diagram  # noqa: PLC0415 - loaded already in a stage
    from reportlab.graphics import renderSVG  # noqa: PLC0415

    args = commands.parse_args(["diagram", *argv])
    if not args.output:
        print("diagram_image.py: -o PREFIX-diagram.pdf is required (the SVG goes beside it)",
              file=sys.stderr)
        return 2
    pdf = Path(args.output)
    svg = pdf.with_suffix(".svg")
    drawings = []
    build = diagram.build_chrom_diagram

    def kept(*given, **named):
        drawings.append(build(*given, **named))
        return drawings[-1]

    diagram.build_chrom_diagram = kept
    try:
        args.func(args)
        renderSVG.drawToFile(drawings[-1], str(svg))
    except Exception as err:  # noqa: BLE001 - a plot that fails leaves the stage going
        for path in (pdf, svg):
            path.unlink(missing_ok=True)
        print(f"diagram_image.py: {pdf.name} and {svg.name} not drawn: {type(err).__name__}: "
              f"{err}", file=sys.stderr, flush=True)
    finally:
        diagram.build_chrom_diagram = build
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
