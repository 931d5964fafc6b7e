"""``python -m labs.security_video [--report DIR] [--no-steer]``: run the lab, write the
report, print a short summary. Needs root. SIGTERM/SIGINT tear everything down."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from labs.netns import LabError


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_cli(report: Path, steer_modes: list[bool], **opts: Any) -> int:
    """Run the scenario once per mode (True = with CPN), write the report; exit code."""
    from labs.security_video import report as rep
    from labs.security_video.scenario import Params, run_scenario

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)  # also when started with SIGINT ignored
    results = []
    try:
        for steer in steer_modes:
            name = "cpn" if steer else "baseline"
            print(f"running the security-video scenario ({name}) …", flush=True)
            data = run_scenario(report / name, Params(steer=steer, **opts))
            results.append(rep.analyse(data))
    except LabError as exc:
        print(f"lab failed, everything torn down: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: everything torn down", file=sys.stderr)
        return 130
    rep.write(results, report)
    print(rep.summary(results))
    print(f"report: {report / 'report.md'}, {report / 'report.json'}, {report / 'latency.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--report", type=Path, default=Path("var/security-video-report"))
    p.add_argument("--no-steer", action="store_true")
    p.add_argument("--before-s", type=float, default=4.0)
    p.add_argument("--after-s", type=float, default=6.0)
    a = p.parse_args(argv)
    return run_cli(a.report, [False] if a.no_steer else [True, False],
                   before_s=a.before_s, after_s=a.after_s)


if __name__ == "__main__":
    sys.exit(main())
