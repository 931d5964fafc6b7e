"""``python -m labs.gba --report DIR``: run the GBA lab without the ``cpn`` CLI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labs.gba.run import run_cli


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labs.gba", description=__doc__)
    p.add_argument("--report", type=Path, default=Path("var/gba-report"),
                   help="report directory (report.json, report.md, controller log)")
    a = p.parse_args(argv)
    return run_cli(a.report)


if __name__ == "__main__":
    sys.exit(main())
