"""``cpn bench dns`` runs end to end on a short schedule against real Knot and dnsperf
(its speeds are measured by ``cpn bench dns``, not asserted here)."""

from __future__ import annotations

import pytest

from labs.bench import dns as bench_dns
from labs.knot import knotd_path
from tests.conftest import have


@pytest.mark.skipif(knotd_path() is None or not have("dnsperf"),
                    reason="needs knotd and dnsperf (scripts/bootstrap.sh installs both)")
def test_dns_bench_short_run_reports_every_figure() -> None:
    out = bench_dns.run(duration_s=0.5, rounds=1, trials=2)
    for who in ("cpn_uncached", "knot_uncached", "cpn_cached", "knot_cached"):
        assert out["answers_per_cpu_s"][who]["median"] > 0, who
        assert out["answers_per_wall_s"][who]["median"] > 0, who
    cores = out["cores"]
    assert cores["qps_1_answerer"]["median"] > 0 and cores["qps_2_answerers"]["median"] > 0
    assert 0 < cores["ceiling_with_client_on_the_same_cores"] <= 2
    assert out["figure"] == out["ratio_per_cpu_s"]["uncached"]
    assert set(out["met"]) == set(out["goal"])
    assert out["change_latency_embedded"]["n"] == 2  # both flips seen by the responder
