"""Shared fixtures."""

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


#: Lab tests: need root, `ip netns`, and run real daemons.
needs_netns = pytest.mark.skipif(not can_netns(), reason="needs root and ip netns")
