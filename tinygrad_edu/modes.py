"""Switches that belong to one thread: grad mode, and the optional checks guards.py installs.

A thread that turns recording off (an evaluation loop under `no_grad`) must not turn it off
for another thread that is training, so, as in PyTorch, every thread has its own switches, and
a new thread starts with recording on and the default checks. They live in a ContextVar (each
thread has its own context, and the engine reads it on every operation: docs/design_decisions.md
gives the measured cost against a threading.local). Nothing here touches arrays.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect


class Modes:
    """The switches in force: a value, never changed in place (a change sets a new one).

    `grad_enabled`: record operations into the graph; `previous_grad`: the values to restore
    as `no_grad` / `enable_grad` blocks end, innermost last. The checks are f(cls, arrays,
    output) after the forward of an op that broadcasts two or more arrays (a number is never
    stretched), f(cls, arrays, output, ctx) after every forward and f(ctx, input_grads) after
    each backward step; None costs nothing.
    """

    __slots__ = ("grad_enabled", "previous_grad", "broadcast_check", "forward_check", "backward_check")

    def __init__(self, grad_enabled=True, previous_grad=(), broadcast_check=None, forward_check=None,
                 backward_check=None):
        self.grad_enabled, self.previous_grad = grad_enabled, previous_grad
        self.broadcast_check, self.forward_check, self.backward_check = broadcast_check, forward_check, backward_check

    def replace(self, **changes) -> "Modes":
        fields = {name: getattr(self, name) for name in Modes.__slots__}
        fields.update(changes)
        return Modes(**fields)


# What a new thread starts with. guards.py gives it the default checks once, when imported,
# through set_default_checks (the one place outside this module that changes it).
DEFAULT = Modes()
_modes = contextvars.ContextVar("tinygrad_edu_modes", default=DEFAULT)
current = _modes.get  # current() -> the calling thread's Modes


def set_default_checks(**checks) -> None:
    """The engine's seam for checks: choose the checks a thread starts with.

    `checks` are among `broadcast_check`, `forward_check`, `backward_check` (see `Modes`). The
    engine never imports the module that provides them (guards.py); it only calls what is here.
    DEFAULT is changed in place because it is the ContextVar's default: threads that have not
    switched anything yet read it directly.
    """
    unknown = set(checks) - {"broadcast_check", "forward_check", "backward_check"}
    if unknown:
        raise TypeError(f"set_default_checks: unknown checks {sorted(unknown)}")
    for name, check in checks.items():
        setattr(DEFAULT, name, check)


def switch(**changes) -> None:
    """Change some switches for the calling thread (e.g. ``switch(forward_check=None)``)."""
    _modes.set(_modes.get().replace(**changes))


def is_grad_enabled() -> bool:
    """True when new operations are recorded into the graph (in the calling thread)."""
    return _modes.get().grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Switch recording on or off, in this thread, inside a `with` block or a decorated function."""

    enabled = True

    def __new__(cls, func=None):
        mode = super().__new__(cls)
        # Allow the bare decorator form `@no_grad` as well as `@no_grad()`.
        return mode(func) if callable(func) else mode

    def __call__(self, func):
        if not inspect.isgeneratorfunction(func):
            return super().__call__(func)

        # A generator runs in pieces, between which its caller runs: the mode holds inside each
        # piece only, as PyTorch's decorators do (a `with` around the call would end at once).
        @functools.wraps(func)
        def generator(*args, **kwargs):
            steps = func(*args, **kwargs)
            resume, value = steps.send, None
            while True:
                try:
                    with type(self)():
                        result = resume(value)
                except StopIteration as finished:
                    return finished.value
                try:
                    resume, value = steps.send, (yield result)
                except GeneratorExit:
                    steps.close()
                    raise
                except BaseException as thrown:  # thrown in by the caller: the generator may catch it
                    resume, value = steps.throw, thrown

        return generator

    def __enter__(self):
        # The value to restore is kept with the thread's switches, not on this object: one
        # decorated function may run in several threads at once.
        modes = _modes.get()
        switch(grad_enabled=self.enabled, previous_grad=(*modes.previous_grad, modes.grad_enabled))

    def __exit__(self, *exc_info):
        previous = _modes.get().previous_grad
        switch(grad_enabled=previous[-1], previous_grad=previous[:-1])  # also when the block raised


class no_grad(_GradMode):
    """Context manager and decorator: operations inside are not recorded (evaluation, updates)."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: record operations again, even inside `no_grad`."""

    enabled = True
