"""Switches that belong to one thread: grad mode, and the optional checks guards.py installs.

A thread that turns recording off (an evaluation loop under `no_grad`) must not turn it off
for another thread that is training, so, as in PyTorch, every thread has its own switches, and
a new thread starts with recording on and the default checks. Nothing here touches arrays.
"""
from __future__ import annotations

import contextlib
import threading


class Modes:
    """One thread's switches; the engine reads them on every operation.

    `grad_enabled`: record operations into the graph. The checks are f(cls, arrays, output)
    after the forward of an op that broadcasts, f(cls, arrays, output, ctx) after every
    forward and f(ctx, input_grads) after each backward step; None costs nothing.
    """

    __slots__ = ("grad_enabled", "broadcast_check", "forward_check", "backward_check", "previous")
    new_thread_checks = (None, None, None)  # what a new thread starts with (guards.py sets it)

    def __init__(self):
        self.grad_enabled = True
        self.broadcast_check, self.forward_check, self.backward_check = Modes.new_thread_checks
        self.previous = []  # grad modes to restore, innermost last (no_grad blocks nest)


class _PerThread(threading.local):
    def __init__(self):  # threading.local runs this in each thread, on its first use there
        self.modes = Modes()


# `this_thread.modes` is the calling thread's Modes (one thread-local lookup per operation).
this_thread = _PerThread()


def is_grad_enabled() -> bool:
    """True when new operations are recorded into the graph (in the calling thread)."""
    return this_thread.modes.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Switch recording on or off, in this thread, inside a `with` block or a decorated function."""

    enabled = True

    def __new__(cls, func=None):
        mode = super().__new__(cls)
        # Allow the bare decorator form `@no_grad` as well as `@no_grad()`.
        return mode(func) if callable(func) else mode

    def __enter__(self):
        # The previous mode is kept per thread, not on this object: one decorated function
        # may run in several threads at once.
        modes = this_thread.modes
        modes.previous.append(modes.grad_enabled)
        modes.grad_enabled = self.enabled

    def __exit__(self, *exc_info):
        modes = this_thread.modes
        modes.grad_enabled = modes.previous.pop()  # restored even when the block raised (not swallowed)


class no_grad(_GradMode):
    """Context manager and decorator: operations inside are not recorded (evaluation, updates)."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: record operations again, even inside `no_grad`."""

    enabled = True
