"""The cpn YANG module is valid (pyang --strict) and matches what the server emits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from pyang import context, repository

from controller.config import apply_config, load_config
from controller.netconf import xmlmap
from controller.store import SqliteStore
from tests.conftest import ROOT

YANG = ROOT / "controller" / "yang" / "cpn.yang"


def test_pyang_strict_accepts_the_module() -> None:
    res = subprocess.run([sys.executable, "-m", "pyang", "--strict", str(YANG)],
                         capture_output=True, text=True)
    if res.returncode != 0 and "No module named pyang" in res.stderr:
        res = subprocess.run([str(Path(sys.executable).parent / "pyang"), "--strict",
                              str(YANG)], capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def schema_paths() -> set[str]:
    repo = repository.FileRepository(str(YANG.parent), use_env=False)
    ctx = context.Context(repo)
    mod = ctx.add_module(str(YANG), YANG.read_text())
    ctx.validate()
    assert mod is not None
    out: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        for ch in getattr(node, "i_children", []):
            if ch.keyword in ("choice", "case"):
                walk(ch, prefix)
                continue
            path = f"{prefix}/{ch.arg}"
            out.add(path)
            walk(ch, path)

    walk(mod, "")
    return out


def test_every_emitted_element_is_in_the_schema(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        apply_config(store, load_config(ROOT / "examples" / "gba.yaml"))
        apply_config(store, load_config(ROOT / "examples" / "security-video.yaml"))
        from controller.netconf.datastore import snapshot

        tree = xmlmap.config_tree(snapshot(store))
    finally:
        store.close()
    emitted: set[str] = set()

    def walk(el: Any, prefix: str) -> None:
        path = f"{prefix}/{el.tag.split('}')[1]}"
        emitted.add(path)
        for ch in el:
            walk(ch, path)

    walk(tree, "")
    missing = emitted - schema_paths()
    assert not missing, f"emitted but not in cpn.yang: {sorted(missing)}"
    assert "/cpn/services/service/requirements/max-latency-ms" in emitted
