"""The MEC sites' own processes and the controller sections that talk to them.

Rules:
- Each MEC runs GoBGP (AS 6500N) announcing the service anycast with its compute
  metadata as large communities (price, power: slow-changing facts), and the site agent
  (``cpn agent``) reporting load over mTLS with a certificate from the lab's own CA; the
  analytics service tells its agent its utilisation over UDP (``--agent-udp``).
- The controller runs ExaBGP (managed by the ``bgp`` component; it dials the passive
  GoBGP speakers over the management links) and the mTLS ingest (``telemetry``).
  Both write the same (site, service) record; ``telemetry.precedence`` decides.
- The overload hysteresis uses the service's utilisation only (``util_pct``): in a
  namespace lab ``/proc/stat`` is the whole machine's, not the MEC's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from labs.gobgp_site import GobgpNeighbor, announce_argv, gobgp_toml
from labs.security_video import topology as T
from telemetry.bgp.codec import ComputeMetadata

LOCAL_AS = 65000
AGENT_UDP = 9870
INGEST_PORT = 8443
#: the site agents' scheduling priority (``AgentConfig.nice``): MEC-1's agent shares
#: the core its own site's load saturates, so it runs raised as monitoring agents do;
#: MEC-2's shares CPU 0 with the camera (the instrument) and, after the move, with the
#: frames it must not delay: default priority
AGENT_NICE: dict[str, int | None] = {"MEC-1": -5, "MEC-2": None}
# site → (AS, controller-side mgmt address, MEC-side mgmt address, metadata)
MECS: dict[str, tuple[int, str, str, dict[str, float]]] = {
    "MEC-1": (65001, T.CTL_FOR["mec1"], "172.16.1.2",
              {"price_per_hour": 1.2, "energy_w": 380.0}),
    "MEC-2": (65002, T.CTL_FOR["mec2"], "172.16.2.2",
              {"price_per_hour": 1.2, "energy_w": 450.0}),
}


def make_ca(workdir: Path) -> Path:
    """The lab's onboarding CA: server cert for the controller, one cert per MEC."""
    from telemetry.pki import CertificateAuthority

    ca_dir = workdir / "ca"
    ca = CertificateAuthority(ca_dir)
    ca.init(server_names=tuple(v[1] for v in MECS.values()), force=True)
    for site in MECS:
        ca.issue(site, force=True)
    return ca_dir


def controller_sections(ca: Path, high: float, low: float) -> dict[str, Any]:
    """``bgp:`` and ``telemetry:`` sections of the lab controller's config."""
    return {
        "bgp": {"local_as": LOCAL_AS, "router_id": T.CTL_FOR["mec1"], "flush_ms": 5,
                "period_s": 30, "hold_time": 9,
                "peers": [{"address": mec, "peer_as": asn, "site": site,
                           "local_address": ctl}
                          for site, (asn, ctl, mec, _) in MECS.items()]},
        "telemetry": {"listen": f"0.0.0.0:{INGEST_PORT}", "ca_bundle": str(ca / "ca.pem"),
                      "server_cert": str(ca / "server.pem"),
                      "server_key": str(ca / "server.key"), "crl": [str(ca / "crl.pem")],
                      "flush_ms": 0, "check_s": 0.5,
                      "cats": {"overload_keys": ["util_pct"], "overload_on_pct": high,
                               "overload_off_pct": low}},
    }


def gobgp_conf(site: str, workdir: Path) -> Path:
    asn, ctl, mec, _ = MECS[site]
    path = workdir / f"gobgp-{site}.toml"
    path.write_text(gobgp_toml(asn, mec, [GobgpNeighbor(ctl, LOCAL_AS, passive=True)],
                               local_address=mec))
    return path


def announce(site: str) -> list[str]:
    """The ``gobgp`` command announcing the anycast with ``site``'s metadata."""
    asn, _, _, l0 = MECS[site]
    return announce_argv(f"{T.ANYCAST}/32", ComputeMetadata(l0=dict(l0), period_s=30), asn)


def agent_conf(site: str, ca: Path, workdir: Path, high: float, low: float) -> Path:
    _, ctl, _, l0 = MECS[site]
    doc = {"site": site, "controller": f"https://{ctl}:{INGEST_PORT}",
           "cert": str(ca / "sites" / f"{site}.pem"), "key": str(ca / "sites" / f"{site}.key"),
           "ca": str(ca / "ca.pem"), "interval_s": 1.0,
           "thresholds": {"on_pct": high, "off_pct": low},
           "service_load_udp": AGENT_UDP, "energy_w": l0["energy_w"],
           "price_per_hour": l0["price_per_hour"], "collectors": ["mem"],
           # a latency lab: no grading benchmark competing with the video service
           "benchmark_s": 0,
           "nice": AGENT_NICE[site],
           "services": [{"name": "video"}]}
    path = workdir / f"agent-{site}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stored_metrics(state_db: Path, key: str) -> dict[str, Any] | None:
    """The controller's stored record for ``key`` (read-only; the controller owns it)."""
    import json

    if not state_db.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT value FROM objects WHERE kind='metrics' AND key=?",
                             (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return json.loads(row[0]) if row else None
