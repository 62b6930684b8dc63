"""Stopping a component's main task on SIGTERM/SIGINT, as the kubelet stops containers.

kube-proxy, the network-policy agent and the ingress controller each run one
long task; the kubelet stops their pods with SIGTERM (and a user's Ctrl-C
sends SIGINT).  Cancelling the task, rather than dying in the handler, lets
each component's `finally` close its watches and data plane cleanly.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


async def run_until_signalled(work: Coroutine[Any, Any, Any]) -> bool:
    """Run `work` until it returns or SIGTERM/SIGINT cancels it; True when a signal
    stopped it.  Other exceptions (SystemExit included) propagate."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return True
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return False
