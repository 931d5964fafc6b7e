"""NodeTable: cached plug-in columns follow Reserve/Unreserve row by row; per-site
groupings and sums for the decision verdicts (WP-3.3.1, WP-3.3.4)."""

from __future__ import annotations

import heapq
from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scheduler.table as table_mod
from scheduler.models import NodeInfo, Task
from scheduler.plugins.core import LeastLoaded, NodeResourcesFit
from tests.scheduler.helpers import node, snap


def _nodes(n: int) -> list[NodeInfo]:
    return [node(f"s{i % 3}", f"n{i}", capacity={"cpu": 8.0, "memory": 32.0})
            for i in range(n)]


def test_cached_column_follows_reserve_and_unreserve() -> None:
    sn = snap(_nodes(40))
    tab = sn.table()
    task = Task(id="t", requests={"cpu": 3.0, "memory": 4.0})
    ll, fit = LeastLoaded({}), NodeResourcesFit({})

    def fresh() -> tuple[np.ndarray, np.ndarray]:
        return (ll.score_batch({}, task, tab, tab.all_rows),
                fit.filter_batch({}, task, tab, tab.all_rows))

    key = ll.batch_key({}, task)
    score = tab.column(("s", key), lambda idx: ll.score_batch({}, task, tab, idx))
    mask = tab.column(("f", key), lambda idx: fit.filter_batch({}, task, tab, idx))
    target = sn.nodes["s1/n4"]
    for i in range(2):  # fill the node: its score drops, then it no longer fits
        target.add(f"x{i}", 100, {"cpu": 3.0, "memory": 4.0}, None)
        score = tab.column(("s", key), lambda idx: ll.score_batch({}, task, tab, idx))
        mask = tab.column(("f", key), lambda idx: fit.filter_batch({}, task, tab, idx))
        want_s, want_m = fresh()
        assert np.array_equal(score.values, want_s)
        assert np.array_equal(mask.values, want_m)
    assert not mask.values[tab.row["s1/n4"]]
    target.remove("x0", {"cpu": 3.0, "memory": 4.0}, None)
    mask = tab.column(("f", key), lambda idx: fit.filter_batch({}, task, tab, idx))
    assert mask.values[tab.row["s1/n4"]]
    assert score.pos == len(tab.changed) - 1  # the score column was not read since


def test_refresh_recomputes_only_changed_rows() -> None:
    sn = snap(_nodes(80))
    tab = sn.table()
    asked: list[int] = []

    def fn(idx: np.ndarray) -> np.ndarray:
        asked.append(len(idx))
        return tab.used_of("cpu", idx)

    tab.column("k", fn)
    sn.nodes["s0/n3"].add("a", 1, {"cpu": 1.0}, None)
    col = tab.column("k", fn)
    assert asked == [80, 1]
    assert col.values[tab.row["s0/n3"]] == 1.0


def test_columns_are_bounded_least_recently_used_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_mod, "COLUMN_BYTES", 0)  # floor: 16 columns
    tab = snap(_nodes(10)).table()
    for k in range(20):
        tab.column(k, lambda idx: np.zeros(len(idx)))
        tab.column(0, lambda idx: np.ones(len(idx)))  # kept: used every time
    assert len(tab._columns) == 16
    assert 0 in tab._columns and 1 not in tab._columns and 19 in tab._columns


def test_site_free_and_by_site() -> None:
    nodes = _nodes(9)
    sn = snap(nodes)
    nodes[0].add("a", 1, {"cpu": 5.0}, None)
    tab = sn.table()
    free = tab.site_free("cpu")
    assert free[tab.site_code["s0"]] == 3 * 8.0 - 5.0
    assert free[tab.site_code["s2"]] == 24.0
    assert [n.name for n in tab.by_site()["s1"]] == ["s1/n1", "s1/n4", "s1/n7"]
    assert not tab.site_free("gpu").any()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, 12.5, 50.0, 99.0, 100.0, 150.0]), min_size=1,
                max_size=40), st.randoms(use_true_random=False))
def test_top3_matches_heap_order_with_ties(values: list[float], rnd: Random) -> None:
    """The vectorised top three (max, then a partition only when needed) picks what
    ``heapq.nsmallest(3, (-total, name, i))`` picks, ties broken by name rank."""
    n = len(values)
    totals = np.array(values, dtype=np.float64)
    rows = np.array(rnd.sample(range(n + 5), n), dtype=np.int64)
    rank = np.array(rnd.sample(range(n + 5), n + 5), dtype=np.int64)
    want = [i for _, _, i in heapq.nsmallest(
        3, ((-values[i], int(rank[rows[i]]), i) for i in range(n)))]
    assert table_mod.top3(totals, rank, rows) == want
