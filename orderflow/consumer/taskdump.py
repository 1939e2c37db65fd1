"""The task dump: on SIGUSR1, every asyncio task's stack (and every thread's) goes to the log,
one JSON line each, and the service carries on. For a replica whose loops look stuck:

    kubectl -n orderflow exec <pod> -- kill -USR1 1

An asyncio service's useful picture is its tasks: where each one awaits. Python's own
faulthandler prints only thread stacks (and, for SIGABRT, ends the process).
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback

from orderflow.consumer.logging import get_logger

log = get_logger(__name__)

STACK_LIMIT = 40


def dump_tasks() -> int:
    """Log every task's stack and every thread's; returns how many tasks there were."""
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    for task in tasks:
        out = io.StringIO()
        task.print_stack(limit=STACK_LIMIT, file=out)
        log.warning("task stack", task=task.get_name(), done=task.done(),
                    cancelling=task.cancelling(), stack=out.getvalue())
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    frames = sys._current_frames()
    for ident, frame in frames.items():
        log.warning("thread stack", thread=names.get(ident, str(ident)),
                    stack="".join(traceback.format_stack(frame, limit=STACK_LIMIT)))
    log.warning("task dump written", tasks=len(tasks), threads=len(frames))
    return len(tasks)
