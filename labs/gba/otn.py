"""The GBA lab's optical layer: the hubs' OTN mesh carried by real NETCONF NEs.

Rules:
- Six lab NEs (``labs.optical.fixture.OpticalLab``: netconfd + OpenSSH on loopback,
  ring + chords, one OMSP 1+1 span) are the transport under the three hub centres:
  HUB-GZ at ``ne0``, HUB-SZ at ``ne2``, HUB-HK at ``ne4`` (GBA-5.2 hub mesh).
- The controller gets an ``optical:`` section naming the NEs; once it has discovered
  all of them, every OTN IP link between hubs in the example network gets an optical
  path through REST (``POST /api/v1/optical/paths``, operator token) with that link
  riding on it, so the link inherits the path's SRLGs (GBA-6.4.2e). GZ–HK is 1+1
  protected (SRLG-disjoint working and protect routes).
- Everything is read back through REST for the report: paths (route, channel, state,
  protect route) and the OTN links' SRLGs before and after.
- Used only when ``netconfd`` is installed; the lab says so in its report otherwise.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx

from labs.netns import LabError
from labs.optical.fixture import OpticalLab

HUB_NE = {"HUB-GZ": "ne0", "HUB-SZ": "ne2", "HUB-HK": "ne4"}
PROTECTED = {frozenset(("HUB-GZ", "HUB-HK"))}


def available() -> bool:
    return shutil.which("netconfd") is not None and shutil.which("sshd") is not None


def section(lab: OpticalLab) -> dict[str, Any]:
    """The controller's ``optical:`` section for the lab's NEs."""
    return {"confirm_timeout_s": 30,
            "ne": [{"name": ne.name, "host": "127.0.0.1", "port": ne.port, "user": "root",
                    "key": str(lab.key)} for ne in lab.nes]}


def _ok(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 300:
        raise LabError(f"{what}: HTTP {r.status_code}: {r.text[:500]}")
    return r.json() if r.content else None


def provision(c: httpx.Client, links: list[dict[str, Any]], n_ne: int,
              timeout: float = 30.0) -> dict[str, Any]:
    """Wait for the controller's NE discovery, then one optical path per hub OTN link."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.get("/api/v1/optical/topology")
        if r.status_code == 200:
            nodes = r.json()["ietf-network:networks"]["network"][0]["node"]
            if len(nodes) == n_ne:
                break
        if time.monotonic() > deadline:
            raise LabError(f"the controller did not discover the {n_ne} optical NEs in "
                           f"{timeout:g} s (last: HTTP {r.status_code} {r.text[:200]})")
        time.sleep(0.2)
    otn = [lk for lk in links if lk["kind"] == "otn"
           and lk["a"] in HUB_NE and lk["b"] in HUB_NE]
    before = {lk_key(lk): sorted(lk.get("srlgs", [])) for lk in otn}
    created = []
    for lk in otn:
        key = lk_key(lk)
        body = {"name": f"otn-{HUB_NE[lk['a']]}-{HUB_NE[lk['b']]}", "a": HUB_NE[lk["a"]],
                "z": HUB_NE[lk["b"]], "hub": True, "ip_links": [key],
                "protect": frozenset((lk["a"], lk["b"])) in PROTECTED}
        created.append(_ok(c.post("/api/v1/optical/paths", json=body),
                           f"optical path for IP link {key}"))
    paths = _ok(c.get("/api/v1/optical/paths"), "GET optical paths")["items"]
    after = {}
    for key in before:
        after[key] = sorted(_ok(c.get(f"/api/v1/links/{key}"), f"GET link {key}")
                            .get("srlgs", []))
    return {"hub_ne": HUB_NE, "created": [p["id"] for p in created],
            "paths": [{k: p.get(k) for k in ("id", "src", "dst", "state", "channel",
                                              "route", "protect-route", "ip-links")}
                      for p in paths],
            "link_srlgs_before": before, "link_srlgs_after": after}


def lk_key(lk: dict[str, Any]) -> str:
    return str(lk.get("id") or f"{lk['a']}~{lk['b']}")
