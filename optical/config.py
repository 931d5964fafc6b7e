"""The ``optical:`` config section: the NEs the controller manages over NETCONF.

Example::

    optical:
      margin_db: 2.0
      ne:
        - {name: ne0, host: 127.0.0.1, port: 18830, user: root, key: /etc/cpn/ne_key}
      otn_links:            # IP links whose OTN path is provisioned when intents need it
        HA~HB: {a: ne0, z: ne3, rate: rate-100G}
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from controller.models.base import Strict
from optical.models import Rate


class NeSpec(Strict):
    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=830, ge=1, le=65535)
    user: str = "root"
    key: str | None = None


class OtnLinkSpec(Strict):
    """An on-demand OTN link (``optical.otn_links``): ``a``/``z`` (the NEs at the two
    hubs), ``rate``, ``protect`` (1+1, SRLG-disjoint)."""

    a: str = Field(min_length=1)
    z: str = Field(min_length=1)
    rate: Rate = Rate.G100
    protect: bool = False


class OpticalSection(Strict):
    """``ne``: NEs; ``k``: candidate routes; ``margin_db``: OSNR margin (dB);
    ``confirm_timeout_s``: confirmed-commit timeout; ``retry_max_s``: backoff cap;
    ``otn_links``: IP link key → ``OtnLinkSpec`` — links whose OTN path the SR policy
    reconciler asks for when an intent's path crosses them and releases when none does
    (``optical.transport``); ``otn_wait_s``: how long a pass waits for such a path to
    come up."""

    ne: list[NeSpec] = Field(default_factory=list)
    k: int = Field(default=3, ge=1, le=10)
    margin_db: float = Field(default=2.0, ge=0, le=20)
    confirm_timeout_s: int = Field(default=30, ge=5, le=3600)
    retry_max_s: float = Field(default=30.0, gt=0)
    otn_links: dict[str, OtnLinkSpec] = Field(default_factory=dict)
    otn_wait_s: float = Field(default=20.0, gt=0, le=600)

    @model_validator(mode="after")
    def _otn_links(self) -> Self:
        names = {n.name for n in self.ne}
        for key, spec in self.otn_links.items():
            for end in ("a", "z"):
                if getattr(spec, end) not in names:
                    raise ValueError(f"otn_links.{key}.{end}: unknown NE "
                                     f"{getattr(spec, end)!r} (one of {sorted(names)})")
            if spec.a == spec.z:
                raise ValueError(f"otn_links.{key}: a and z are both {spec.a!r}")
        return self
