"""The command line: ``python -m ssl_inference [--version] demo [options]``.

Invalid options end with one line that says what is allowed (exit status 2), never a
traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__

#: rows of the bundled data sets (statsmodels.datasets.randhie / anes96)
RANDHIE_ROWS, ANES_ROWS = 20190, 944
HEALTH_MEASURES = 5


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}; got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m ssl_inference`` parser with its ``demo`` command."""
    parser = _Parser(prog="python -m ssl_inference",
                     description="Two-stage inference on learned representations.")
    parser.add_argument("--version", action="version",
                        version=f"ssl_inference {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command",
                                parser_class=_Parser)
    demo = sub.add_parser(
        "demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="two-stage analyses of two real data sets that ship with statsmodels",
        description="Act 1: a health index learned by PCA on people without outcome data "
                    "(RAND Health Insurance Experiment), then OLS of outpatient visits; "
                    "naive vs two-stage summaries and how much unlabeled data is enough. "
                    "Act 2: attitude components learned on a few survey respondents (1996 "
                    "American National Election Survey), then a Logit of the vote; where "
                    "the first stage changes the conclusion and what to test instead.")
    demo.add_argument("--pretrain-rows", type=_integer(10, RANDHIE_ROWS - 20),
                      default=1000, metavar="M",
                      help="act 1: people without outcome data the health index is learned on")
    demo.add_argument("--labeled-rows", type=_integer(20, RANDHIE_ROWS - 10),
                      default=1000, metavar="N",
                      help="act 1: other people with outcomes for the regression")
    demo.add_argument("--components", type=_integer(1, HEALTH_MEASURES - 1),
                      default=2, metavar="K",
                      help=f"act 1: principal components of the {HEALTH_MEASURES} health "
                           "measures")
    demo.add_argument("--survey-pretrain-rows",
                      type=_integer(10, ANES_ROWS - 100),
                      default=100, metavar="M",
                      help="act 2: survey respondents whose vote is set aside to learn the "
                           "attitude components")
    demo.add_argument("--seed", type=_integer(0, 2 ** 32 - 1), default=0,
                      help="random split of both data sets")
    demo.add_argument("--plot", metavar="DIR", default=argparse.SUPPRESS,
                      help="also save the figures (SE comparison per act, unlabeled-data "
                           "curve) as PNG files in DIR; needs matplotlib")
    parser.demo_parser = demo
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from . import demo

    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser.demo_parser
    plot = getattr(args, "plot", None)
    if args.pretrain_rows + args.labeled_rows > RANDHIE_ROWS:
        sub.error(f"--pretrain-rows + --labeled-rows must be at most {RANDHIE_ROWS} (the "
                  f"RAND data have {RANDHIE_ROWS} rows); got "
                  f"{args.pretrain_rows + args.labeled_rows}")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sub.error('--plot needs matplotlib: pip install "ssl_inference[plot]"')
    try:
        acts = [demo.rand_act(args.pretrain_rows, args.labeled_rows, args.seed,
                              args.components),
                demo.survey_act(args.survey_pretrain_rows, args.seed)]
    except ValueError as exc:  # e.g. fewer non-degenerate directions than components
        sub.error(str(exc))
    print("\n\n".join(act.text for act in acts))
    if plot is not None:
        for path in demo.save_figures(plot, acts):
            print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
