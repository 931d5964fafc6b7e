"""Shared fixtures, and the CI rule: with ``CI=true`` nothing may skip.

A test that needs root, namespaces, a real daemon or an optional package skips on a
developer's machine that lacks it (the reason is listed by ``-ra``). In CI the machine
is set up by ``scripts/bootstrap.sh`` with everything the suite uses, so a skip there
means a component is missing or broken: under ``CI=true`` every skip — a ``skipif``
mark, ``pytest.skip()`` in a test or fixture, a module-level skip or
``importorskip`` — is reported as a FAILURE naming the reason and the fix. CI cannot
be green by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller.runtime import Runtime
from controller.store import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
#: set by CI (and by ``.ci/run``): skips become failures
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
_CI_FIX = ("CI=true: a test may not skip here - install what it needs "
           "(scripts/bootstrap.sh: APT_PACKAGES, pyproject.toml) or fix the test")


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped: {_skip_reason(rep.longrepr)}\n{_CI_FIX}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and rep.outcome == "skipped":  # module-level skip / importorskip
        rep.outcome = "failed"
        rep.longrepr = f"module skipped: {_skip_reason(rep.longrepr)}\n{_CI_FIX}"


def can_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    try:
        yield s
    finally:
        s.close()


@contextmanager
def example_runtime(tmp: Path, example: str,
                    *tokens: tuple[str, str, str, str | None]) -> Iterator[Runtime]:
    """A runtime on ``examples/<example>``, applied, with API ``tokens`` (token, name,
    role, tenant); its store is closed afterwards."""
    from controller.auth import digest
    from controller.config import load_config
    from controller.runtime import Settings

    rt = Runtime(load_config(ROOT / "examples" / example), Settings(state=tmp))
    rt.apply_config()
    for token, name, role, tenant in tokens:
        rt.store.add_token(digest(token), name, role, tenant)
    try:
        yield rt
    finally:
        rt.store.close()


def have(binary: str) -> bool:
    return shutil.which(binary) is not None or Path(f"/usr/sbin/{binary}").exists()


#: Lab tests: need root, `ip netns`, and run real daemons (a failure under CI=true).
needs_netns = pytest.mark.skipif(not can_netns(), reason="needs root and ip netns")
