"""``cpn bench dns`` runs end to end on a short schedule against real Knot and dnsperf
(its speeds are measured by ``cpn bench dns``, not asserted here)."""

from __future__ import annotations

import pytest

from labs.bench import dns as bench_dns
from labs.knot import knotd_path
from tests.conftest import have


@pytest.mark.skipif(knotd_path() is None or not have("dnsperf") or not have("gcc"),
                    reason="needs knotd, dnsperf and gcc (scripts/bootstrap.sh installs them)")
def test_dns_bench_short_run_reports_every_figure() -> None:
    out = bench_dns.run(duration_s=0.5, rounds=1, trials=2)
    for who in ("cpn_uncached", "knot_uncached", "cpn_cached", "knot_cached"):
        assert out["answers_per_cpu_s"][who]["median"] > 0, who
        assert out["answers_per_wall_s"][who]["median"] > 0, who
    old = out["cores_dnsperf"]
    assert old["qps_1_answerer"]["median"] > 0 and old["qps_2_answerers"]["median"] > 0
    assert 0 < old["ceiling_with_client_on_the_same_cores"] <= 2
    # the light generator, CPN workers and Knot alike; every sampled answer was parsed
    # and matched the server's unloaded answer (a wrong one fails the run)
    for who in ("cpn", "knot"):
        cores = out["cores"][who]
        assert cores["qps_1"]["median"] > 0 and cores["qps_2"]["median"] > 0, who
        assert cores["wrong"] == 0 and cores["samples_checked"] > 0, who
        assert cores["scaling"] == min(cores["wall_scaling"],
                                       cores["dedicated_cores_scaling"]), who
        assert 0 < cores["ceiling_client_on_same_cores"] <= 2, who
    assert out["scaling_2_cores"] == out["cores"]["cpn"]["scaling"]
    assert out["scaling_2_cores_generator"] == "labs/dnsload.c"
    assert out["figure"] == out["ratio_per_cpu_s"]["uncached"]
    assert set(out["met"]) == set(out["goal"])
    assert out["change_latency_embedded"]["n"] == 2  # both flips seen by the responder
