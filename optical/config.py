"""The ``optical:`` config section: the NEs the controller manages over NETCONF.

Example::

    optical:
      margin_db: 2.0
      ne:
        - {name: ne0, host: 127.0.0.1, port: 18830, user: root, key: /etc/cpn/ne_key}
"""

from __future__ import annotations

from pydantic import Field

from controller.models.base import Strict


class NeSpec(Strict):
    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=830, ge=1, le=65535)
    user: str = "root"
    key: str | None = None


class OpticalSection(Strict):
    """``ne``: NEs; ``k``: candidate routes; ``margin_db``: OSNR margin (dB);
    ``confirm_timeout_s``: confirmed-commit timeout; ``retry_max_s``: backoff cap."""

    ne: list[NeSpec] = Field(default_factory=list)
    k: int = Field(default=3, ge=1, le=10)
    margin_db: float = Field(default=2.0, ge=0, le=20)
    confirm_timeout_s: int = Field(default=30, ge=5, le=3600)
    retry_max_s: float = Field(default=30.0, gt=0)
