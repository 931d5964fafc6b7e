"""The CI rule (``tests/conftest.py``): with ``CI=true`` a skip of any kind fails the
run; without it the same tests skip with their reason listed. Runs a throw-away test
module in a child pytest with this suite's conftest loaded as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROBE = '''
import pytest

pytest.importorskip("a_module_that_does_not_exist_" + "x")
'''
TESTS = '''
import pytest

@pytest.mark.skipif(True, reason="needs gobgpd")
def test_marked() -> None:
    pass

def test_called() -> None:
    pytest.skip("needs a daemon")

def test_fine() -> None:
    pass
'''


def _run(tmp: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp / "pytest.ini").write_text("[pytest]\n")
    (tmp / "test_probe_skips.py").write_text(TESTS)
    (tmp / "test_probe_module.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
         "--continue-on-collection-errors",
         "-p", "tests.conftest", "-c", str(tmp / "pytest.ini"), "--rootdir", str(tmp),
         str(tmp)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [True, False])
def test_skips_fail_under_ci_and_are_listed_otherwise(tmp_path: Path, ci: bool) -> None:
    res = _run(tmp_path, ci)
    out = res.stdout + res.stderr
    if ci:
        assert res.returncode != 0, out
        assert "needs gobgpd" in out and "needs a daemon" in out, out
        assert "a_module_that_does_not_exist_x" in out, out
        assert "CI=true: a test may not skip here" in out
        assert " skipped" not in out.splitlines()[-1], out
    else:
        assert res.returncode == 0, out
        assert "SKIPPED" in out and "3 skipped" in out.splitlines()[-1], out
