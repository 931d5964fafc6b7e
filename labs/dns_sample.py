"""Sample state: the security-video topology (GBA-App.B) as plain objects.

Rules:
- Used by the DNS tests and ``cpn bench dns``; no I/O. Client 10.0.0.0/24 sits behind
  R2 (near MEC-1), 10.0.1.0/24 behind R3 (near MEC-2); both MECs start with L2 = 8.
"""

from __future__ import annotations

from typing import Any

from controller.models import (
    ComputeMetrics,
    ComputeNode,
    ComputeResource,
    Entity,
    Link,
    Router,
    Service,
    Site,
)
from dns_compute.models import DnsSection

ZONE = "cpn.example"

#: Client 10.0.0.0/24 sits behind R2 (near MEC-1), 10.0.1.0/24 behind R3 (near MEC-2).
DNS: dict[str, Any] = {
    "ttl_s": 5,
    "client_subnets": [
        {"prefix": "10.0.0.0/24", "node": "R2"},
        {"prefix": "10.0.1.0/24", "node": "R3"},
        {"prefix": "10.0.0.0/16", "region": "campus"},
    ],
}


def dns_section(**over: Any) -> DnsSection:
    return DnsSection.model_validate({**DNS, **over})


def entities() -> list[Entity]:
    out: list[Entity] = [
        Site(name="CAM-SITE", kind="mec", region="campus"),
        Site(name="MEC-1", kind="mec", region="campus", energy_w=400, price_per_hour=1.5),
        Site(name="MEC-2", kind="mec", region="campus"),
        ComputeNode.model_validate({"site": "MEC-1", "name": "mec1-srv"}),
        ComputeNode.model_validate({"site": "MEC-2", "name": "mec2-srv"}),
        Router(name="R1", site="CAM-SITE", region="campus"),
        Router(name="R2", region="campus"),
        Router(name="R3", region="campus"),
        Link(a="R1", b="R2", delay_ms=1),
        Link(a="R1", b="R3", delay_ms=2),
        Link(a="R2", b="MEC-1", delay_ms=0.5),
        Link(a="R3", b="MEC-2", delay_ms=0.5),
        Service.model_validate({
            "name": "video", "anycast": ["198.51.100.10"], "port": 5004,
            "protocol": "udp", "requirements": {"max_latency_ms": 100},
            "instances": [{"site": "MEC-1", "address": "10.0.1.10"},
                          {"site": "MEC-2", "address": "10.0.2.10"}]}),
        ComputeMetrics(site="MEC-1", service="video", l2=8,
                       l0={"cpu_pct": 20, "gpu_free": 1, "util_pct": 20,
                           "price_per_hour": 1.5, "energy_w": 400}),
        ComputeMetrics(site="MEC-2", service="video", l2=8, l0={"cpu_pct": 30, "util_pct": 30}),
    ]
    out.append(ComputeResource.model_validate({
        "site": "MEC-1", "name": "mec1-cpu", "description": "edge cores", "type": "cpu",
        "value": 8, "unit": "cores", "scope": ["mec1-srv"]}))
    return out


def overloaded(site: str = "MEC-1") -> ComputeMetrics:
    return ComputeMetrics(site=site, service="video", l2=1, overloaded=True,
                          l0={"cpu_pct": 95, "util_pct": 95})
