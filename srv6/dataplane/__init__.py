"""SRv6 dataplane: kernel route model, ``PolicyProgrammer`` backends, make-before-break.

Controller-facing API (see ``docs/srv6-dataplane.md``): build a ``NodeState`` per node
(``render``), drive each node through a ``PolicyProgrammer`` (``NetlinkProgrammer``
locally, ``AgentProgrammer`` over HTTPS/mTLS), move a policy with ``mbb.switch``.
"""

from __future__ import annotations

from .programmer import MemoryProgrammer, PolicyProgrammer, Result, TransactionalProgrammer
from .state import (
    RTPROT_CPN,
    NodeState,
    RouteOp,
    Seg6LocalRoute,
    Seg6Route,
    plan,
    render_diff,
)

__all__ = [
    "RTPROT_CPN", "MemoryProgrammer", "NodeState", "PolicyProgrammer", "Result", "RouteOp",
    "Seg6LocalRoute", "Seg6Route", "TransactionalProgrammer", "plan", "render_diff",
]
