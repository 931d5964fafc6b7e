"""The composition root's process-level behaviour."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from controller.runtime import _forget_signals_in_forked_children


def test_a_signal_to_a_forked_helper_no_longer_stops_the_controller() -> None:
    """pyroute2 forks a helper to open a netlink socket inside a namespace and sends it
    SIGTERM when closing it. The helper shared the loop's signal wake-up socket, so the
    controller read that SIGTERM as its own and stopped — a leader opening its routers'
    programmers stopped itself (cpn lab ha-video)."""
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        try:
            _forget_signals_in_forked_children()
            pid = os.fork()
            if pid == 0:  # the helper: waits to be told to go
                time.sleep(10)
                os._exit(0)
            time.sleep(0.2)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
            await asyncio.sleep(0.3)
            return stopping.is_set()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    assert asyncio.run(main()) is False
