"""Compare a fresh `make demo` leaderboard with the committed one: LUMINA's rows to printed precision.

    python -m experiments.compare_demo outputs/leaderboard/leaderboard.csv results/seed0/leaderboard.csv

Prints every cell that differs at 3 decimals and exits 1 when any does (`make check-demo` runs it).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from groundtruth.replication import leaderboard_differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", help="the fresh demo's leaderboard.csv")
    parser.add_argument("committed", help="the committed leaderboard.csv")
    parser.add_argument("--digits", type=int, default=3, help="decimals compared (the printed precision)")
    args = parser.parse_args(argv)
    for path in (args.new, args.committed):
        try:
            open(path).close()
        except OSError as err:
            sys.exit(f"error: {path}: {err.strerror}; run `make demo` (new) or `make results` (committed) first")
    differences = leaderboard_differences(pd.read_csv(args.new), pd.read_csv(args.committed), digits=args.digits)
    if differences.empty:
        print(f"LUMINA rows of {args.new} equal {args.committed} to {args.digits} decimals")
        return 0
    print(differences.to_string(index=False))
    print(f"{len(differences)} cell(s) differ")
    return 1


if __name__ == "__main__":
    sys.exit(main())
