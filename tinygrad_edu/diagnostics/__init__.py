"""Training diagnostics: say, in plain words, why a network is not learning, and what to try.

- monitor.py: `Monitor`, which records statistics while an ``nn`` model trains;
- kinds.py: the thresholds and the rules behind each kind of warning;
- report.py: `DiagnosticWarning` and `DiagnosticsReport` (text and Jupyter tables);
- sanity.py: `sanity_check` and `lr_find`, checks to run before a long training;
- numpy_code.py: the same diagnoses for a learner's own NumPy code, without porting it.
"""
from .kinds import (
    CHANCE_STEPS, CONSTANT_SHARE, DEAD_LIMIT, EXPLODING_GROWTH, EXPLODING_RATIO, FIRST_LOSS_FACTOR,
    INPUT_RMS_LIMIT, LARGE_UPDATE, OVERFIT_PATIENCE, OVERFIT_RISE, SATURATION_LIMIT, SMALL_UPDATE,
    UNSTABLE_CLIMB, UNSTABLE_JUMP, UNSTABLE_WINDOW, VANISHING_RATIO,
)
from .monitor import LayerHistory, Monitor, ParameterHistory
from .numpy_code import BroadcastReport, NumpyMonitor, check_broadcasts
from .report import DiagnosticsReport, DiagnosticWarning
from .sanity import Check, LRFindResult, SanityReport, lr_find, sanity_check

__all__ = [
    "Monitor", "DiagnosticsReport", "DiagnosticWarning", "LayerHistory", "ParameterHistory",
    "sanity_check", "SanityReport", "Check", "lr_find", "LRFindResult",
    "NumpyMonitor", "check_broadcasts", "BroadcastReport",
]
