"""Compute metadata carried in BGP: one pluggable encoder/decoder per encoding.

Rules:
- A ``MetadataCodec`` turns ``ComputeMetadata`` into the arguments a BGP speaker
  needs to attach it to a route (``encode``) and turns the parsed path attributes
  of a received route back into ``ComputeMetadata`` (``decode``). Decoding is
  strict: an unknown metric id or an out-of-range value raises ``CodecError``
  naming it; the caller turns that into a ``Rejected`` event (issue #3 bad input).
- The default codec is ``LargeCommunityCodec``: RFC 8092 large communities
  ``ASN:metric-id:value`` (values are unsigned 32-bit integers, so fractional
  metrics are scaled). Large communities whose first field (the global
  administrator, RFC 8092 §3) is not the originating peer's ASN — the ``asn``
  given to ``decode``, else the codec's configured one — or whose metric-id is
  below 1 or above 999 are ordinary policy communities and are ignored; ids
  1–999 are this table's space.
- A metric id carried twice in one route: identical triples are one community
  (RFC 8092 §5 duplicates); two different values keep the first and add a
  warning to ``ComputeMetadata.warnings`` (the caller logs it), the route is
  still used.
- ``EdgeMetadataCodec`` is the extension point for the Edge-Metadata path
  attribute of draft-ietf-idr-5g-edge-service-metadata; it refuses with a clear
  ``CodecError`` until the draft's attribute is implemented.

Metric-id table (large community ``ASN:id:value``; decoded value = value / scale):

====  ======================  =====  ===========  ================================
id    key                     scale  max (raw)    meaning
====  ======================  =====  ===========  ================================
1     ``l2``                  100    1000         CATS L2 score 0–10
2     ``compute_norm``        1000   1000         CATS L1 compute 0–1
3     ``communication_norm``  1000   1000         CATS L1 communication 0–1
4     ``service_norm``        1000   1000         CATS L1 service 0–1
10    ``cpu_pct``             1      100          CPU utilisation, %
11    ``mem_pct``             1      100          memory utilisation, %
12    ``gpu_free``            1      65535        free GPU devices
13    ``price_per_hour``      100    10000000     price per resource-hour (×100)
14    ``energy_w``            1      10000000     power draw, W
15    ``util_pct``            1      100          service utilisation, %
16    ``queue_depth``         1      10000000     service queue depth, requests
17    ``period_s``            1      86400        declared update period, s (R14)
====  ======================  =====  ===========  ================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from telemetry.cats import CATEGORIES

#: Metric-id space of the large-community codec (first and last id we own).
ID_MIN, ID_MAX = 1, 999


@dataclass(frozen=True, slots=True)
class MetricId:
    """One row of the metric-id table: ``id``, ``key``, ``scale``, ``max_raw``."""

    id: int
    key: str
    scale: int
    max_raw: int


METRIC_IDS: tuple[MetricId, ...] = (
    MetricId(1, "l2", 100, 1000),
    MetricId(2, "compute_norm", 1000, 1000),
    MetricId(3, "communication_norm", 1000, 1000),
    MetricId(4, "service_norm", 1000, 1000),
    MetricId(10, "cpu_pct", 1, 100),
    MetricId(11, "mem_pct", 1, 100),
    MetricId(12, "gpu_free", 1, 65535),
    MetricId(13, "price_per_hour", 100, 10_000_000),
    MetricId(14, "energy_w", 1, 10_000_000),
    MetricId(15, "util_pct", 1, 100),
    MetricId(16, "queue_depth", 1, 10_000_000),
    MetricId(17, "period_s", 1, 86_400),
)
BY_ID: dict[int, MetricId] = {m.id: m for m in METRIC_IDS}
BY_KEY: dict[str, MetricId] = {m.key: m for m in METRIC_IDS}


class CodecError(ValueError):
    """Metadata could not be encoded/decoded; the message names the field."""


@dataclass(frozen=True, slots=True)
class ComputeMetadata:
    """Compute metadata of one route: ``l2`` (0–10), ``l1`` (category → 0–1),
    ``l0`` (raw values, units in keys), ``period_s`` (declared update period),
    ``warnings`` (what the decoder tolerated, e.g. a metric id carried twice)."""

    l2: float | None = None
    l1: dict[str, float] = field(default_factory=dict)
    l0: dict[str, float] = field(default_factory=dict)
    period_s: float | None = None
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.l2 is None and not self.l1 and not self.l0 and self.period_s is None


class MetadataCodec(Protocol):
    """Encodes compute metadata onto a route and decodes it from parsed attributes."""

    name: str

    def encode(self, md: ComputeMetadata) -> list[str]:
        """Arguments for ``gobgp global rib add PREFIX <args…>``."""
        ...

    def decode(self, attributes: Mapping[str, Any], asn: int | None = None) -> ComputeMetadata:
        """ExaBGP parsed ``attribute`` object → metadata; ``CodecError`` if invalid.
        ``asn`` is the originating peer's AS: only its communities are metadata."""
        ...


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CodecError(f"{where}: not an integer: {v!r}")
    if not 0 <= v <= 0xFFFFFFFF:
        raise CodecError(f"{where}: {v} is outside 0..2^32-1")
    return v


class LargeCommunityCodec:
    """RFC 8092 large communities ``ASN:metric-id:value`` (table in module docstring).

    ``asn`` (configured) is the global administrator accepted when ``decode`` is
    not told the originating peer's AS; with neither, any is accepted."""

    name = "large-community"

    def __init__(self, asn: int | None = None) -> None:
        self.asn = asn

    def triples(self, md: ComputeMetadata, asn: int) -> list[tuple[int, int, int]]:
        values: dict[str, float] = {**md.l0, **md.l1}
        if md.l2 is not None:
            values["l2"] = md.l2
        if md.period_s is not None:
            values["period_s"] = md.period_s
        out = []
        for key, value in values.items():
            mid = BY_KEY.get(key)
            if mid is None:
                raise CodecError(f"metadata key {key!r} has no metric id "
                                 f"(known: {', '.join(sorted(BY_KEY))})")
            raw = round(value * mid.scale)
            if not 0 <= raw <= mid.max_raw:
                raise CodecError(f"{key}={value} is outside 0..{mid.max_raw / mid.scale:g}")
            out.append((asn, mid.id, raw))
        return sorted(out, key=lambda t: t[1])

    def encode(self, md: ComputeMetadata, asn: int | None = None) -> list[str]:
        a = asn if asn is not None else self.asn
        if a is None:
            raise CodecError("large-community encoding needs the site's ASN")
        lcs = self.triples(md, a)
        return ["large-community", ",".join(f"{x}:{y}:{z}" for x, y, z in lcs)] if lcs else []

    def decode(self, attributes: Mapping[str, Any], asn: int | None = None) -> ComputeMetadata:
        owner = asn if asn is not None else self.asn
        raw_list = attributes.get("large-community", [])
        if not isinstance(raw_list, list):
            raise CodecError(f"large-community: expected a list, got {type(raw_list).__name__}")
        l0: dict[str, float] = {}
        l1: dict[str, float] = {}
        l2: float | None = None
        period: float | None = None
        seen: dict[int, int] = {}
        warnings: list[str] = []
        for i, lc in enumerate(raw_list):
            where = f"large-community[{i}]"
            if not isinstance(lc, list) or len(lc) != 3:
                raise CodecError(f"{where}: expected [asn, id, value], got {lc!r}")
            gadm, mid_n, raw = (_int(v, where) for v in lc)
            if (owner is not None and gadm != owner) or not ID_MIN <= mid_n <= ID_MAX:
                continue  # someone else's policy community (RFC 8092 §3)
            mid = BY_ID.get(mid_n)
            if mid is None:
                raise CodecError(f"{where}: unknown metric id {mid_n} ({gadm}:{mid_n}:{raw})")
            if raw > mid.max_raw:
                raise CodecError(f"{where}: {mid.key} raw value {raw} exceeds {mid.max_raw}")
            if mid_n in seen:
                if seen[mid_n] != raw:
                    warnings.append(f"{where}: metric id {mid_n} ({mid.key}) carried twice "
                                    f"({gadm}:{mid_n}:{seen[mid_n]} and {gadm}:{mid_n}:{raw})"
                                    "; the first is used")
                continue
            seen[mid_n] = raw
            value = raw / mid.scale
            if mid.key == "l2":
                l2 = value
            elif mid.key == "period_s":
                if value <= 0:
                    raise CodecError(f"{where}: period_s must be > 0")
                period = value
            elif mid.key in CATEGORIES:
                l1[mid.key] = value
            else:
                l0[mid.key] = value
        return ComputeMetadata(l2=l2, l1=l1, l0=l0, period_s=period, warnings=tuple(warnings))


class EdgeMetadataCodec:
    """Extension point: the Edge-Metadata path attribute of
    draft-ietf-idr-5g-edge-service-metadata (site preference, capacity, …).

    Not implemented yet: both directions raise ``CodecError`` saying so, so a config
    that selects it fails loudly instead of silently dropping metadata."""

    name = "edge-metadata"

    def encode(self, md: ComputeMetadata) -> list[str]:
        raise CodecError("edge-metadata codec (draft-ietf-idr-5g-edge-service-metadata) is "
                         "not implemented; use codec 'large-community'")

    def decode(self, attributes: Mapping[str, Any], asn: int | None = None) -> ComputeMetadata:
        raise CodecError("edge-metadata codec (draft-ietf-idr-5g-edge-service-metadata) is "
                         "not implemented; use codec 'large-community'")


CODECS: dict[str, type[LargeCommunityCodec] | type[EdgeMetadataCodec]] = {
    LargeCommunityCodec.name: LargeCommunityCodec,
    EdgeMetadataCodec.name: EdgeMetadataCodec,
}


def codec_by_name(name: str) -> MetadataCodec:
    cls = CODECS.get(name)
    if cls is None:
        raise CodecError(f"unknown metadata codec {name!r} (known: {', '.join(CODECS)})")
    return cls()
