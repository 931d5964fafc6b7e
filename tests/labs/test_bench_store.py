"""`cpn bench store` on a tiny schedule: every mode and the concurrent group-commit
figure are measured on a real SQLite file, journaled and restored exactly."""

from __future__ import annotations

from labs.bench.store import run


def test_store_bench_measures_every_mode_and_concurrent_acknowledged_writers() -> None:
    # a batch never puts one resource twice (batch <= resources): each put is a change
    out = run(rounds=1, updates=600, batch=100, single_normal=100, single_full=20,
              sites=5, per_site=40, writers=4, per_writer=25)
    for mode in ("full", "commit", "normal"):
        m = out[mode]
        assert m["every_update_journaled"] and m["restart_restored_exactly"]
        assert m["journal_keeps_previous"]
        assert m["one_commit_per_update_per_s"]["median"] > 0
        assert m["batched_per_s"]["median"] > 0
    conc = out["full"]["concurrent_acknowledged"]
    assert conc["updates"] == 100 and conc["every_update_journaled"]
    assert conc["commits_per_fsync"] >= 1.0
    assert out["figure"]["sync"] == "full" and isinstance(out["met"], bool)
