"""The intents lab/bench backbones render a config the controller loads, and every
intent the benches create is feasible on it (in-memory devices)."""

from __future__ import annotations

from pathlib import Path

import yaml

from controller.config import load_config
from controller.runtime import Runtime, Settings
from labs.bench.intent import _intents
from labs.intents.backbone import config, mesh, national
from srv6.intents.bindings import make_programmer
from srv6.intents.models import IntentState, SrPolicyIntentStatus
from srv6.intents.reconciler import IntentReconciler
from srv6.models import SrPolicyIntent


def test_national_and_mesh_configs_load_and_all_bench_intents_program(tmp_path: Path
                                                                      ) -> None:
    for bb, intents in ((national(), [SrPolicyIntent(headend="BJ", endpoint=e, color=c)
                                      for e in ("M1", "M2") for c in (100, 200)]),
                        (mesh(20), _intents(mesh(20), 300))):
        cfg = tmp_path / "cpn.yaml"
        cfg.write_text(yaml.safe_dump(config(bb, "memory")))
        state = tmp_path / f"s{len(bb.routers)}"
        rt = Runtime(load_config(cfg), Settings(state=state))
        try:
            rt.apply_config()
            sec = rt.cfg.sections["intents"] if rt.cfg else None
            rec = IntentReconciler(sec)  # type: ignore[arg-type]
            rec.programmers = {n: make_programmer(n, b) for n, b in rec.sec.nodes.items()}
            with rt.store.transaction("test", "intents") as txn:
                for it in intents:
                    txn.put(it)
            rec.reconcile_once(rt.store)
            states = {s.key: s.state for s in rt.store.list(SrPolicyIntentStatus)}
            assert set(states.values()) == {IntentState.PROGRAMMED}, states
            assert rec.reconcile_once(rt.store).ops == 0
        finally:
            rt.store.close()
