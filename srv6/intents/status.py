"""SR policy intent status: what one reconciler pass reports of each intent (state,
reason, device, fix, active/backup path, generation), and the digest that ties a status
to its spec."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from srv6.dataplane.state import NodeState
from srv6.intents.models import IntentState, SrPolicyIntentStatus
from srv6.intents.planner import IntentPlan
from srv6.models import SrPolicyIntent


def intent_status(ip: IntentPlan, old: SrPolicyIntentStatus | None, digest: str,
                  actual: Mapping[str, NodeState], held: Mapping[str, tuple[str, str]],
                  frozen: Mapping[str, str], now: datetime,
                  retry_s: float) -> SrPolicyIntentStatus:
    """The status of one planned intent after a pass: ``failed`` (no plan, with the
    verdict), ``degraded`` (a device refused or lost its routes: previous path kept,
    retried every ``retry_s``), else ``programmed`` (``verified`` kept while the active
    path is unchanged). ``generation`` moves when the spec digest changes."""
    base = old or SrPolicyIntentStatus(intent=ip.key)
    gen = base.generation + (digest != base.spec_digest)
    upd: dict[str, Any] = {"generation": gen, "spec_digest": digest,
                           "prefixes": list(ip.prefixes)}
    if not ip.ok:
        upd |= {"state": IntentState.FAILED, "reason": ip.reason,
                "constraint": ip.constraint, "device": ip.device, "fix": ip.fix,
                "active": None, "backup": None, "observed_generation": gen}
    elif ip.key in held:
        dev, err = held[ip.key]
        upd |= {"state": IntentState.DEGRADED, "constraint": None, "device": dev,
                "reason": f"{dev} {err}; the previous path is kept",
                "fix": f"check {dev} (reachable, interfaces up, SRv6 enabled); the "
                       f"reconciler retries every {retry_s:g} s"}
    else:
        missing = [n for n, rs in ip.routes.items()
                   if n not in actual or any(r not in actual[n] for r in rs)]
        if missing:
            dev = missing[0]
            upd |= {"state": IntentState.DEGRADED, "device": dev, "constraint": None,
                    "reason": f"{dev} {frozen.get(dev, 'does not hold the routes')}",
                    "fix": f"check {dev}; the reconciler retries every "
                           f"{retry_s:g} s"}
        else:
            same_path = base.active == ip.active and base.state in (
                IntentState.PROGRAMMED, IntentState.VERIFIED)
            upd |= {"state": base.state if same_path else IntentState.PROGRAMMED,
                    "reason": ip.reason if not same_path else base.reason,
                    "constraint": None, "device": None, "fix": "",
                    "active": ip.active, "backup": ip.backup,
                    "observed_generation": gen,
                    "programmed_at": base.programmed_at if same_path else now}
            if not same_path:
                upd["verified_at"] = None
    out = base.model_copy(update=upd)
    if old is None or out.state != old.state:
        out = out.model_copy(update={"changed_at": now})
    return out


def spec_digest(intent: SrPolicyIntent) -> str:
    """The digest a status records of the spec it was computed for (``spec_digest``)."""
    return hashlib.sha1(intent.model_dump_json().encode()).hexdigest()[:16]


def material(s: SrPolicyIntentStatus | None) -> Any:
    if s is None:
        return None
    return s.model_dump(exclude={"changed_at"})
