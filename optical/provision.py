"""All-or-nothing provisioning of one path across its NEs (GBA-6.4.2).

Rules:
- Phase 1: every NE ``prepare``s (lock → edit → validate → confirmed-commit), in
  parallel. Any failure ⇒ every NE that was prepared is ``cancel``led (cancel-commit
  restores its running datastore) and ``CommitError``/``ConnectionError`` is raised
  naming the failing NE(s) and their rpc-errors.
- Phase 2: every NE ``confirm``s. A confirm that fails leaves that NE to roll back by
  itself when its confirm timeout expires; the error says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from controller.errors import CommitError, ConnectionError, CpnError
from optical.device import OpticalDevice
from optical.models import NeEdit

log = logging.getLogger("cpn.optical.provision")


async def provision(devices: Mapping[str, OpticalDevice], edits: Mapping[str, NeEdit],
                    confirm_timeout_s: int = 30) -> None:
    todo = [(ne, e) for ne, e in edits.items() if not e.empty()]
    missing = [ne for ne, _ in todo if ne not in devices]
    if missing:
        raise ConnectionError(f"no session for NE(s) {', '.join(missing)}")
    results = await asyncio.gather(
        *(devices[ne].prepare(e, confirm_timeout_s) for ne, e in todo), return_exceptions=True)
    failed = [(ne, r) for (ne, _), r in zip(todo, results, strict=True)
              if isinstance(r, BaseException)]
    if failed:
        await asyncio.gather(*(devices[ne].cancel() for ne, _ in todo),
                             return_exceptions=True)
        msg = "; ".join(str(r) if isinstance(r, CpnError) else f"NE {ne}: {r!r}"
                        for ne, r in failed)
        log.warning("provision rolled back on %s: %s", [ne for ne, _ in todo], msg)
        if all(isinstance(r, ConnectionError) for _, r in failed):
            raise ConnectionError(f"rolled back, unreachable: {msg}")
        raise CommitError(f"rolled back on all NEs: {msg}")
    results = await asyncio.gather(*(devices[ne].confirm() for ne, _ in todo),
                                   return_exceptions=True)
    bad = [f"NE {ne}: {r}" for (ne, _), r in zip(todo, results, strict=True)
           if isinstance(r, BaseException)]
    if bad:
        raise CommitError("confirm failed (those NEs revert at the confirm timeout): "
                          + "; ".join(bad))
