"""Optical-layer domain values (GBA-6.4.2): fibers, lightpaths, per-NE config and state.

Rules:
- Frozen, slotted dataclasses; units in the field names (km, dB, ms, Gbit/s).
- Channels are numbered 1..96 (50 GHz grid); a lightpath keeps one channel end to end
  (wavelength continuity).
- ``NeConfig``/``NeState`` mirror the device YANG module ``cpn-optical-device``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

CHANNELS = 96
RATES_GBPS = {"rate-100G": 100, "rate-400G": 400, "rate-800G": 800}
#: ODU payload sizes in 1.25G tributary slots (ITU-T G.709): ODU2 = 8 TS, ODU4 = 80 TS.
ODU_SLOTS = {"ODU2": 8, "ODU4": 80}
TS_PER_OCH = 80  # one ODUC/ODU4-class server layer per OCh in this model


class Rate(StrEnum):
    G100 = "rate-100G"
    G400 = "rate-400G"
    G800 = "rate-800G"


@dataclass(frozen=True, slots=True)
class Fiber:
    """An OMS link between NEs ``a`` and ``b`` (undirected): ``length_km``,
    ``attenuation_db_per_km``, ``delay_ms``, ``srlgs``, ``protect_of`` (the id of the
    working fiber this one protects in an OMSP/OLP 1+1 group, else None)."""

    id: str
    a: str
    b: str
    length_km: float
    attenuation_db_per_km: float = 0.25
    delay_ms: float = 0.0
    srlgs: tuple[str, ...] = ()
    protect_of: str | None = None

    def other(self, ne: str) -> str:
        return self.b if ne == self.a else self.a

    @property
    def delay(self) -> float:
        return self.delay_ms or self.length_km * 0.005  # 5 µs/km in fibre


@dataclass(frozen=True, slots=True)
class Lightpath:
    """An OCh: ``nodes`` (NE names in order), ``fibers`` (ids), ``channel``, ``rate``,
    ``osnr_db`` (end-to-end estimate), ``used_ts`` (ODU tributary slots taken)."""

    id: str
    nodes: tuple[str, ...]
    fibers: tuple[str, ...]
    channel: int
    rate: Rate = Rate.G100
    osnr_db: float = 0.0
    used_ts: frozenset[int] = frozenset()

    def free_ts(self) -> list[int]:
        return [t for t in range(1, TS_PER_OCH + 1) if t not in self.used_ts]


@dataclass(frozen=True, slots=True)
class OduCircuit:
    """An ODU container (``odu_type`` ODU2/ODU4/ODUflex) groomed onto lightpath ``och``
    using tributary ``slots``; ``bandwidth_gbps`` for ODUflex."""

    id: str
    och: str
    odu_type: str
    slots: tuple[int, ...]
    bandwidth_gbps: float = 0.0


class PathState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DOWN = "down"
    RESTORING = "restoring"
    FAILED = "failed"


@dataclass(slots=True)
class OpticalPath:
    """A service path managed by the controller: ``working`` (and ``protect`` for 1+1)
    lightpaths, optional ``odu``; ``active`` is ``working``/``protect``; ``ip_links`` are
    keys of ``controller.models.Link`` records riding on it (cross-layer SRLGs)."""

    id: str
    src: str
    dst: str
    working: Lightpath
    protect: Lightpath | None = None
    odu: OduCircuit | None = None
    state: PathState = PathState.PENDING
    active: str = "working"
    ip_links: tuple[str, ...] = ()
    error: str = ""
    history: list[str] = field(default_factory=list)
    groomed: bool = False  # the ODU rides an existing lightpath (``working``)


# --- per-NE configuration and state, as in the YANG module --------------------------

@dataclass(frozen=True, slots=True)
class OchXc:
    name: str
    path: str
    channel: int
    rate: str = "rate-100G"
    a_degree: int | None = None
    a_port: str | None = None
    z_degree: int | None = None
    z_port: str | None = None


@dataclass(frozen=True, slots=True)
class Odu:
    name: str
    path: str
    type: str
    och: str
    slots: tuple[int, ...] = ()
    bandwidth_gbps: float | None = None


@dataclass(frozen=True, slots=True)
class ProtectionGroup:
    name: str
    working_link: str
    protect_link: str
    path: str = ""
    revertive: bool = True
    wait_to_restore_ms: int = 300_000
    hold_off_ms: int = 0


@dataclass(frozen=True, slots=True)
class NeLink:
    id: str
    remote_ne: str
    length_km: float
    attenuation_db: float = 0.25
    delay_ms: float = 0.0
    srlgs: tuple[str, ...] = ()
    in_use: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NeConfig:
    """The ``device`` container of one NE."""

    name: str = ""
    degrees: dict[int, str] = field(default_factory=dict)   # index -> link id
    add_drop: dict[str, str] = field(default_factory=dict)  # port -> transceiver
    links: dict[str, NeLink] = field(default_factory=dict)
    transceivers: dict[str, str] = field(default_factory=dict)  # name -> rate
    xcs: dict[str, OchXc] = field(default_factory=dict)
    odus: dict[str, Odu] = field(default_factory=dict)
    groups: dict[str, ProtectionGroup] = field(default_factory=dict)

    def degree_of(self, link: str) -> int | None:
        return next((i for i, lk in self.degrees.items() if lk == link), None)


@dataclass(frozen=True, slots=True)
class Alarm:
    ne: str
    id: str
    type: str
    resource: str
    raised_at: str = ""


@dataclass(frozen=True, slots=True)
class NeState:
    """The ``ne-state`` container: link and xc oper-status, active paths, alarms."""

    links: dict[str, str] = field(default_factory=dict)
    xcs: dict[str, str] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)
    switches: dict[str, int] = field(default_factory=dict)
    alarms: tuple[Alarm, ...] = ()


@dataclass(frozen=True, slots=True)
class NeSnapshot:
    ne: str
    config: NeConfig
    state: NeState


@dataclass(frozen=True, slots=True)
class NeEdit:
    """What one NE must add (``xcs``/``odus``/``groups``) or delete (``delete_paths``:
    every xc/odu/group tagged with these path names)."""

    xcs: tuple[OchXc, ...] = ()
    odus: tuple[Odu, ...] = ()
    groups: tuple[ProtectionGroup, ...] = ()
    delete: tuple[tuple[str, str], ...] = ()  # (list name, key): och-xc/odu/protection-group

    def empty(self) -> bool:
        return not (self.xcs or self.odus or self.groups or self.delete)
