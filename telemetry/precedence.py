"""Source precedence: what a metric source's observation does to the stored record —
the one place this is decided (every ``MetricSource`` commits through
``telemetry.source.commit``, which calls ``merge``).

``merge(current, incoming, retract)`` by kind:
- ``ComputeMetrics`` (written by the site agent, GBA-6.3, and BGP, GBA-6.4.3b, for the
  same (site, service)): ``combine``, below.
- ``Link`` (link probes, GBA-6.4.3b network metrics): a probe measures only
  ``delay_ms``, ``jitter_ms`` and ``loss_pct``; everything else on the link is the
  operator's and is kept. A link that is not in the topology is never created (None);
  a measurement within 0.01 of the stored values changes nothing (None: no write).
- Anything else a source stages (the agent's ``ComputeResource`` and lifecycle
  records) is its own and is written as it is.

``combine`` rules (pure: the current record and the incoming one in, the record to
store out):
- Rank: ``agent`` (the site's own measurement, seconds fresh) above ``bgp`` (route
  metadata, coarse). Any other source ranks with the agent (e.g. a REST report).
- Scores — ``l1``, ``l2``, ``overloaded``, ``period_s``, ``window_s``, ``source``,
  ``updated_at`` — come from the incoming record when it ranks at least as high as the
  current one, or when the current one is stale; otherwise the current scores stay (a
  coarse BGP update never overrides what the site just measured).
- L0 values are merged (incoming wins per key), so what only one source knows — BGP's
  advertised price, the agent's queue depth — stays visible. A stale current record
  contributes nothing.
- Availability is the AND of each source's own say, kept as L0 flags: ``route_up``
  (BGP: 1 announced, 0 withdrawn) and ``service_up`` (agent: 1 up, 0 down). So a BGP
  withdraw takes the instance out however fresh the agent's report, and an agent report
  never brings a withdrawn route back; each source clears only its own flag.
- ``retract`` names L0 keys the incoming source carried before and no longer does
  (BGP implicit withdraw, RFC 4271 §3.1: a replacing route replaces the whole
  metric set); they are dropped from the current record instead of lingering.
- ``stale`` comes with the scores: each writer marks only its own records stale (a BGP
  session going down does not make the agent's fresh measurement stale).
- In a cluster every controller admits the agent reports sent to it: an agent record
  older (``updated_at``) than the stored agent record of the same key is not written,
  so commits from several replicas in any order end at the newest observation (a
  staleness mark carries the record's own time and still applies). BGP records have a
  single writer, the leader (``telemetry.plugin_bgp``).
"""

from __future__ import annotations

from collections.abc import Collection

from controller.models import ComputeMetrics, Link
from controller.models.base import Entity
from telemetry.records import replace

#: what a link probe measures; the rest of a ``Link`` is configuration
MEASURED_LINK_FIELDS = ("delay_ms", "jitter_ms", "loss_pct")
#: link measurements closer than this to the stored ones are not written
LINK_EPSILON = 0.01

FLAG = {"bgp": "route_up", "agent": "service_up"}
#: sources whose records any controller of a cluster may commit (each receives the
#: reports sent to it): ordered by observation time, so an older observation committed
#: late never replaces a newer one and the commit order does not matter (issue 16).
#: BGP is not among them: only the leader commits it, in the order its session heard.
ORDERED = frozenset({"agent"})
_RANK = {"bgp": 1}


def rank(source: str) -> int:
    return _RANK.get(source, 2)


def combine(current: ComputeMetrics | None, incoming: ComputeMetrics,
            retract: Collection[str] = ()) -> ComputeMetrics:
    """The record to store when ``incoming`` arrives while ``current`` is stored;
    ``retract``: L0 keys the incoming source no longer reports."""
    flag = FLAG.get(incoming.source)
    l0 = dict(incoming.l0)
    if flag is not None:
        l0[flag] = 1.0 if incoming.available else 0.0
    if current is None or current.stale:
        base = incoming
    else:
        kept = {k: v for k, v in current.l0.items() if k not in retract} if retract \
            else current.l0
        l0 = {**kept, **l0}
        if current.source != incoming.source and rank(incoming.source) < rank(current.source):
            base = current
        else:
            base = incoming
    available = all(l0.get(f, 1.0) == 1.0 for f in FLAG.values())
    if flag is None:  # a source without its own flag says available/unavailable directly
        available = available and incoming.available
    # both records were validated; only the merged L0 and availability change
    return replace(base, l0=l0, available=available)


def merge(current: Entity | None, incoming: Entity, retract: Collection[str] = ()
          ) -> Entity | None:
    """The record to store when a metric source observed ``incoming`` while ``current``
    is stored (None: write nothing); ``retract`` as for ``combine``."""
    if isinstance(incoming, ComputeMetrics):
        if (isinstance(current, ComputeMetrics) and incoming.source in ORDERED
                and current.source == incoming.source
                and incoming.updated_at < current.updated_at):
            return None  # an older observation of the same source (another replica's)
        return combine(current if isinstance(current, ComputeMetrics) else None, incoming,
                       retract)
    if isinstance(incoming, Link):
        if not isinstance(current, Link):
            return None  # a probe never creates a link
        upd = {f: getattr(incoming, f) for f in MEASURED_LINK_FIELDS}
        if all(abs(getattr(current, f) - v) < LINK_EPSILON for f, v in upd.items()):
            return None
        return current.model_copy(update=upd)
    return incoming
