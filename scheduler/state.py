"""Domain objects → scheduler ``Snapshot`` (pure; the component passes lists in).

Rules:
- Each ``ComputeNode`` is a scheduling node; its capacity is the consumable
  ``ComputeResource``s scoped to it (by name, or ``*`` shared site-wide). A site with
  resources but no nodes becomes one node ``site/site``.
- Resource type → resource name: cpu, memory, gpu, npu, tpu; other types use the
  resource's own name (extended resources). Resources without a value are skipped.
- Site-wide ``ComputeMetrics`` (usable only) give L2 and the overloaded state; site
  ``price_per_hour``/``energy_w`` and ``l0`` ``price_per_hour``/``energy_w`` feed the
  price- and energy-aware policies.
- Running jobs are charged to the first node of their site that has room (the
  store records the site only); so are dispatched jobs (queued at a centre, they hold
  their share of it). Each carries its walltime end (``expected_end``), which
  reservation and backfill plan by.
- Centres (GBA-6.3): a site in ``down`` has no nodes this pass (nothing is placed at a
  centre whose workload manager does not answer); a site in ``capacity`` takes its
  capacity from the centre's own report instead of declared resources, split evenly
  over its nodes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.models import (
    ComputeMetrics,
    ComputeNode,
    ComputeResource,
    Job,
    Link,
    ResourceType,
    Router,
    Site,
)
from controller.models.job import HOLDING
from scheduler.models import NodeInfo, Snapshot, Task
from scheduler.network import graph_from

TYPE_NAMES = {ResourceType.CPU: "cpu", ResourceType.MEMORY: "memory", ResourceType.GPU: "gpu",
              ResourceType.NPU: "npu", ResourceType.TPU: "tpu"}


def build_snapshot(*, sites: Sequence[Site], nodes: Sequence[ComputeNode],
                   resources: Sequence[ComputeResource], metrics: Sequence[ComputeMetrics],
                   links: Sequence[Link], routers: Sequence[Router], jobs: Sequence[Job],
                   now: float, down: Collection[str] = (),
                   capacity: Mapping[str, Mapping[str, float]] | None = None) -> Snapshot:
    site_by = {s.name: s for s in sites}
    out: dict[str, NodeInfo] = {}
    per_site: dict[str, list[ComputeNode]] = {}
    for n in nodes:
        if n.site in site_by:
            per_site.setdefault(n.site, []).append(n)
    met = {m.site: m for m in metrics if m.service == "*" and m.usable}
    for s in sites:
        if s.name in down:
            continue
        m = met.get(s.name)
        price = (m.l0.get("price_per_hour") if m else None) or s.price_per_hour or 1.0
        energy = (m.l0.get("energy_w") if m else None) or s.energy_w or 100.0
        members = per_site.get(s.name) or [ComputeNode(site=s.name, name=s.name)]
        for n in members:
            out[n.key] = NodeInfo(
                name=n.key, site=s.name, site_kind=s.kind, region=s.region, awake=n.awake,
                price_per_hour=price, energy_w=energy, l2=m.l2 if m else None,
                overloaded=m.overloaded if m else False, labels=dict(n.labels))
    for r in resources:
        if r.value is None or not r.consumable or r.site not in site_by:
            continue
        name = TYPE_NAMES.get(r.type, r.name)
        targets = [k for k, ni in out.items() if ni.site == r.site and (
            "*" in r.scope or k.split("/", 1)[1] in r.scope or len(
                [x for x in out.values() if x.site == r.site]) == 1)]
        # a shared site-wide pool is split evenly so no node over-claims it
        share = r.value / len(targets) if "*" in r.scope and len(targets) > 1 else r.value
        for k in targets:
            cap = out[k].capacity
            cap[name] = cap.get(name, 0.0) + share
    for site, reported in (capacity or {}).items():
        here = [ni for ni in out.values() if ni.site == site]
        for ni in here:  # the centre's report replaces what was declared
            ni.capacity = {k: v / len(here) for k, v in reported.items() if v > 0}
    snap = Snapshot(nodes=out, graph=graph_from(links, routers), now=now)
    for j in jobs:
        if j.state not in HOLDING or j.site is None:
            continue
        t = Task.from_job(j)
        for _ in range(t.replicas):
            node = next((x for x in out.values() if x.site == j.site
                         and x.fits(t.requests) is None), None)
            node = node or next((x for x in out.values() if x.site == j.site), None)
            if node is not None:
                node.add(t.id, t.priority, t.requests, t.group)
                end = expected_end(j, now)
                if end is not None:
                    node.ends[t.id] = end
    return snap


def expected_end(job: Job, now: float) -> float | None:
    """When a job holding resources frees them (WP-3.3.3 reservation/backfill): its start
    (at the centre, or now when still waiting there) + walltime (or runtime estimate)."""
    limit = job.spec.walltime_s or job.spec.runtime_estimate_s
    if limit is None:
        return None
    started = job.started_at or (job.run.started_at if job.run is not None else None)
    return (started.timestamp() if started is not None else now) + limit
