"""Shared test set-up: hypothesis profiles and a fixture that seals global state.

Profiles: ``dev`` (fast, random examples each run), ``ci`` (more examples, derandomized so a
run is repeatable, chosen automatically when the CI variable is set) and ``thorough``; pick
one with the ``HYPOTHESIS_PROFILE`` environment variable.
"""
import os
import pathlib
import sys

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_edu as tg

# The first learner's code (examples/seed_learner.py) has one copy, in examples/; tests import it.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _sealed_global_state():
    """Every test starts with grad mode on, float32 as default and the broadcast guard in its
    default 'warn' mode (which setup.cfg turns into an error), whatever the last one did."""
    default_dtype = tg.get_default_dtype()
    with tg.enable_grad(), tg.set_broadcast_check("warn"):
        yield
    tg.set_default_dtype(default_dtype)
    assert tg.is_grad_enabled(), "a test left grad mode switched off"
    assert not tg.is_anomaly_enabled(), "a test left detect_anomaly() switched on"


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """Tests multiply small matrices thousands of times; on a busy 2-core machine multithreaded
    BLAS makes that several times slower and erratic. threadpoolctl comes with scikit-learn
    (the examples extra); without it the suite still runs, only slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def broadcast_guard_off():
    """For tests that stretch both operands on purpose (random broadcastable shapes)."""
    with tg.set_broadcast_check("off"):
        yield


# The `examples` extra (scikit-learn, matplotlib, tqdm) is optional: with only `pip install -e .[test]`
# the suite must pass, so a docstring or docs example that uses one of them is skipped, saying which.
# (Test functions skip themselves with pytest.importorskip.)
_EXTRA_USES = {"load_digits(": "sklearn", "sklearn": "sklearn",
               "matplotlib": "matplotlib", ".plot(": "matplotlib"}


def pytest_collection_modifyitems(config, items):
    import importlib.util

    missing = {module for module in set(_EXTRA_USES.values()) if importlib.util.find_spec(module) is None}
    if not missing:
        return
    for item in items:
        examples = getattr(getattr(item, "dtest", None), "examples", None)
        if not examples:
            continue
        source = "".join(example.source for example in examples)
        needed = sorted({module for use, module in _EXTRA_USES.items() if use in source} & missing)
        if needed:
            reason = f"needs {', '.join(needed)}, from the examples extra: pip install -e .[examples]"
            item.add_marker(pytest.mark.skip(reason=reason))
