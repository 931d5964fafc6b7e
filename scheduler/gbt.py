"""GB/T 45401 test metrics (GBT-9.2.4), pure functions plus a time-weighted recorder.

Rules (formulas as in GBT-9):
- performance deviation Δp = (1/n)·Σ|P·aᵢ − pᵢ| — P: whole-card throughput, aᵢ: the
  share of card instance i holds, pᵢ: its measured throughput; reported also
  relative to P (``deviation_rel``).
- performance loss C = 1 − (Tv/core_v)/(Tp/core_p) — throughput per core of the
  virtual instance against the physical card (0 = no loss from virtualisation).
- fluctuation ∂ = max T / min T over instances of equal spec (1 = perfectly even).
- card utilisation q_k = (1/N_b)·Σ q_u — here the time-weighted mean over the run of
  the card's allocated share (the limit of equally spaced samples q_u).
- cluster utilisation Q = (1/k)·Σ q_k; scheduling success rate = successful /
  requested; task resource utilisation = Σ used·t / Σ allocated·t (time-weighted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def deviation(card_throughput: float, shares: Sequence[float],
              measured: Sequence[float]) -> float:
    if len(shares) != len(measured) or not shares:
        raise ValueError("deviation needs one measured throughput per instance share")
    return sum(abs(card_throughput * a - p) for a, p in zip(shares, measured, strict=True)) \
        / len(shares)


def loss(tp: float, core_p: float, tv: float, core_v: float) -> float:
    if min(tp, core_p, core_v) <= 0:
        raise ValueError("loss needs positive physical throughput and core counts")
    return 1.0 - (tv / core_v) / (tp / core_p)


def fluctuation(throughputs: Sequence[float]) -> float:
    if not throughputs or min(throughputs) <= 0:
        raise ValueError("fluctuation needs positive throughputs")
    return max(throughputs) / min(throughputs)


@dataclass(slots=True)
class UtilisationRecorder:
    """Integrates each card's allocated share over time and tracks task outcomes.

    ``set_share(card, share, t)`` at every change; ``task_done(alloc, used, seconds)``
    when a task ends; ``requested``/``succeeded`` count scheduling attempts."""

    start: float = 0.0
    _share: dict[str, float] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)
    _area: dict[str, float] = field(default_factory=dict)
    requested: int = 0
    succeeded: int = 0
    _used_t: float = 0.0
    _alloc_t: float = 0.0

    def add_card(self, card: str) -> None:
        self._share.setdefault(card, 0.0)
        self._since.setdefault(card, self.start)
        self._area.setdefault(card, 0.0)

    def set_share(self, card: str, share: float, t: float) -> None:
        self.add_card(card)
        self._area[card] += self._share[card] * (t - self._since[card])
        self._share[card] = max(0.0, min(1.0, share))
        self._since[card] = t

    def share(self, card: str) -> float:
        return self._share.get(card, 0.0)

    def attempt(self, ok: bool) -> None:
        self.requested += 1
        self.succeeded += int(ok)

    def task_done(self, allocated: float, used: float, seconds: float) -> None:
        self._alloc_t += allocated * seconds
        self._used_t += min(used, allocated) * seconds

    def card_utilisation(self, t: float) -> dict[str, float]:
        span = t - self.start
        if span <= 0:
            return dict.fromkeys(self._share, 0.0)
        return {c: (self._area[c] + self._share[c] * (t - self._since[c])) / span
                for c in self._share}

    def report(self, t: float) -> dict[str, float]:
        q = self.card_utilisation(t)
        return {
            "cluster_utilisation_q": sum(q.values()) / len(q) if q else 0.0,
            "success_rate": self.succeeded / self.requested if self.requested else 1.0,
            "task_resource_utilisation": self._used_t / self._alloc_t if self._alloc_t
            else 0.0,
            "requested": float(self.requested), "succeeded": float(self.succeeded),
        }


def performance(card_throughput: float, card_cores: float,
                instances: Mapping[str, tuple[float, float, float]]) -> dict[str, float]:
    """Δp, C and ∂ from ``instances``: id → (share, cores, measured throughput)."""
    if not instances:
        return {}
    shares = [v[0] for v in instances.values()]
    meas = [v[2] for v in instances.values()]
    dp = deviation(card_throughput, shares, meas)
    losses = [loss(card_throughput, card_cores, tv, cv) for _, cv, tv in instances.values()]
    groups: dict[float, list[float]] = {}
    for share, _, tv in instances.values():  # ∂ compares equal instances only
        groups.setdefault(round(share, 6), []).append(tv)
    fl = max(fluctuation(g) if min(g) > 0 else float("inf") for g in groups.values())
    return {"deviation": dp, "deviation_rel": dp / card_throughput,
            "loss": sum(losses) / len(losses), "fluctuation": fl}
