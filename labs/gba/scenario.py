"""The GBA multi-centre lab scenario as data: config, seeded metrics, jobs, expectations.

Rules:
- Pure: YAML/dicts in, dicts out; no I/O except reading the example config.
- The network is ``examples/gba.yaml`` (GBA-5.2: 3 hubs meshed by OTN and IP-private
  links, 2 compute centres, 2 MECs, Internet fallback); the lab adds only the
  ``scheduler:`` profiles (one per GBA-6.5f policy), an operator token and the state dir.
- Seeded ``ComputeMetrics`` carry ``energy_w`` / ``price_per_hour`` in L0 so the energy-
  and price-aware policies have something to choose on; ``expected_site`` derives each
  job's expected site from that same table (never a hard-coded answer), so the lab can
  fail.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gba.yaml"

#: The client side of every flow: users at the Guangzhou edge (GBA-5.2 MEC).
CLIENT = "MEC-GZ1"

#: Seeded site-wide metrics: (energy W, price per resource-hour, CATS L2 0-10).
SEED: dict[str, tuple[float, float, float]] = {
    "HUB-GZ": (850_000, 2.4, 6.0),
    "HUB-SZ": (700_000, 2.9, 7.0),
    "HUB-HK": (400_000, 3.6, 8.0),
    "DC-FS": (90_000, 1.9, 7.5),    # hydro-cooled: lowest draw, not the cheapest
    "DC-DG": (260_000, 1.2, 6.5),   # cheapest, mid energy
    "MEC-GZ1": (150_000, 5.5, 5.0),
    "MEC-SZ1": (150_000, 5.5, 5.0),
    "INTERNET": (500_000, 4.0, 9.0),
}

_FIT = ["node-resources-fit", "node-ready"]
_BIND = ["resources", "default-binder"]

#: ``scheduler:`` profiles, one per GBA-6.5f policy the lab exercises.
PROFILES: dict[str, dict[str, Any]] = {
    "energy-aware": {"plugins": [*_FIT, "energy-aware", *_BIND],
                     "weights": {"energy-aware": 1.0}},
    "price-aware": {"plugins": [*_FIT, "price-aware", *_BIND],
                    "weights": {"price-aware": 1.0}},
    # GBA-6.5f-7: big data pulls the job to the data; small data moves to the best
    # (here: cheapest) centre.
    "data-aware": {"plugins": [*_FIT, {"name": "data-aware",
                                       "args": {"big_gib": 100, "transfer_ref_s": 600}},
                               "price-aware", *_BIND],
                   "weights": {"data-aware": 2.0, "price-aware": 1.0}},
    # GBA-6.5f-6: delay/jitter/loss from the client (GBA-5.2 interconnect order is
    # applied to the flow's path, labs.gba.steer; the ``interconnect`` plug-in would
    # also prefer a compute centre over a hub reached by IP-private only).
    "network-aware": {"plugins": [*_FIT, {"name": "network-aware",
                                          "args": {"delay_ref_ms": 10}}, *_BIND],
                      "weights": {"network-aware": 1.0}},
    # GBA-6.5f-6 + GBA-5.2: the same, plus the interconnect order of the target site.
    "network-interconnect": {"plugins": [*_FIT, {"name": "network-aware",
                                                 "args": {"delay_ref_ms": 10}},
                                         "interconnect", *_BIND],
                             "weights": {"network-aware": 1.0, "interconnect": 0.5}},
}


@dataclass(frozen=True, slots=True)
class JobCase:
    """One job the lab submits: ``name``, ``policy`` (profile or ``manual``), ``spec``
    extras, and ``why`` (what the choice should show)."""

    name: str
    policy: str
    why: str
    spec: dict[str, Any] = field(default_factory=dict)


TENANT = "ai-lab"
BIG_DATA_SITE = "HUB-HK"
MANUAL_SITE = "HUB-SZ"

CASES: tuple[JobCase, ...] = (
    JobCase("energy", "energy-aware", "lowest seeded energy_w wins",
            {"kind": "hpc", "requirements": {"cpu_cores": 16}}),
    JobCase("price", "price-aware", "lowest seeded price_per_hour wins",
            {"kind": "big-data", "requirements": {"cpu_cores": 16}}),
    JobCase("data-big", "data-aware", "20 TiB at the data site: run next to the data",
            {"kind": "big-data", "requirements": {"cpu_cores": 16, "bandwidth_mbps": 1000},
             "data_site": BIG_DATA_SITE, "data_gib": 20_000}),
    JobCase("data-small", "data-aware", "1 GiB of data moves to the cheapest centre",
            {"kind": "big-data", "requirements": {"cpu_cores": 16},
             "data_site": BIG_DATA_SITE, "data_gib": 1}),
    JobCase("network", "network-aware", "48 cores: lowest delay from the client within 5 ms",
            {"kind": "video", "requirements": {"cpu_cores": 48, "max_latency_ms": 5}}),
    JobCase("network-ic", "network-interconnect",
            "48 cores within 5 ms, GBA-5.2: a centre reached over IP-private beats a hub "
            "reached without OTN",
            {"kind": "video", "requirements": {"cpu_cores": 48, "max_latency_ms": 5}}),
    JobCase("manual", "manual", "operator names the site (GBA-6.5f-1)",
            {"kind": "ai-training", "requirements": {"cpu_cores": 16, "bandwidth_mbps": 400},
             "site": MANUAL_SITE}),
)


def build_config(state: Path, token: str, example: Path = EXAMPLE) -> dict[str, Any]:
    """The controller config: the example network plus the lab's sections."""
    doc: dict[str, Any] = copy.deepcopy(yaml.safe_load(example.read_text()))
    doc.setdefault("controller", {})["state"] = str(state)
    doc["scheduler"] = {"profiles": copy.deepcopy(PROFILES), "interval_s": 0.5,
                        "cpsat_time_s": 2.0}
    doc.setdefault("auth", {}).setdefault("tokens", []).append(
        {"name": "gba-lab", "role": "operator", "token": token})
    return doc


def metrics_bodies() -> list[dict[str, Any]]:
    """One site-wide ``ComputeMetrics`` body per site (period long enough not to go
    stale during the lab)."""
    return [{"site": s, "service": "*", "l0": {"energy_w": e, "price_per_hour": p},
             "l2": l2, "source": "gba-lab", "period_s": 3600, "window_s": 60}
            for s, (e, p, l2) in SEED.items()]


def job_body(case: JobCase) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": f"gba-{case.name}", **copy.deepcopy(case.spec)}
    if case.policy != "manual":
        spec["policy"] = case.policy
    spec.setdefault("params", {})["origin"] = CLIENT
    return {"spec": spec, "tenant": TENANT}


def cpu_capacity(doc: dict[str, Any]) -> dict[str, float]:
    """Largest single-node CPU count per site (from the config)."""
    out: dict[str, float] = {}
    for s in doc.get("sites", []):
        best = 0.0
        for n in s.get("nodes", []):
            cpu = sum(float(r.get("value", 0)) for r in n.get("resources", [])
                      if r.get("type") == "cpu" and not r.get("dynamic"))
            best = max(best, cpu)
        out[s["name"]] = best
    return out


def expected_site(case: JobCase, doc: dict[str, Any],
                  delays: dict[str, float] | None = None,
                  ranks: dict[str, int] | None = None) -> str | None:
    """Where ``case`` should land given ``SEED`` and the config (None: no claim).

    energy/price: arg-min of the seeded value among sites with room; data-aware with
    data >= 100 GiB: the data site; with small data: the cheapest; network-aware: the
    lowest-delay site within ``max_latency_ms`` (``delays`` from the client);
    network-interconnect: among those, the best GBA-5.2 rank (``ranks``: 0 = the
    site's preferred interconnect is the worst kind on its least-delay path), then
    delay; manual: the named site.
    """
    need = float(case.spec.get("requirements", {}).get("cpu_cores", 0))
    cap = cpu_capacity(doc)
    fits = [s for s in SEED if cap.get(s, 0.0) >= need]
    if case.policy == "manual":
        site = case.spec.get("site")
        return str(site) if site is not None else None
    if case.policy == "energy-aware":
        return min(fits, key=lambda s: SEED[s][0])
    if case.policy == "price-aware":
        return min(fits, key=lambda s: SEED[s][1])
    if case.policy == "data-aware":
        if float(case.spec.get("data_gib", 0)) >= 100:
            return str(case.spec["data_site"])
        return min(fits, key=lambda s: SEED[s][1])
    if case.policy == "network-aware" and delays is not None:
        bound = float(case.spec.get("requirements", {}).get("max_latency_ms", 1e9))
        ok = [s for s in fits if delays.get(s, 1e9) <= bound]
        return min(ok, key=lambda s: delays[s]) if ok else None
    if case.policy == "network-interconnect" and delays is not None and ranks is not None:
        bound = float(case.spec.get("requirements", {}).get("max_latency_ms", 1e9))
        ok = [s for s in fits if delays.get(s, 1e9) <= bound]
        return min(ok, key=lambda s: (ranks.get(s, 9), delays[s])) if ok else None
    return None
