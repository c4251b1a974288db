"""Guard against the PySide6 6.12.0 + Python 3.11 crash (bool_dealloc / none_dealloc).

That build drops a reference to True on every Signal.emit() and to None on every Qt
method returning nothing; after a few thousand calls the interpreter aborts. The pins in
pyproject.toml keep it out; this test fails if a future install brings it back.
"""

import sys

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QPlainTextEdit


class _Emitter(QObject):
    fired = Signal(int)


def test_signal_emit_and_void_calls_keep_refcounts(qapp):
    emitter = _Emitter()
    got = []
    emitter.fired.connect(got.append)
    edit = QPlainTextEdit()
    timer = QTimer()
    n = 500  # small enough that a leaking build fails the assert before it aborts
    before_true = sys.getrefcount(True)
    before_none = sys.getrefcount(None)
    for i in range(n):
        emitter.fired.emit(i)
        edit.setPlainText("x")
        timer.start(1000)
        timer.stop()
    drift_true = sys.getrefcount(True) - before_true
    drift_none = sys.getrefcount(None) - before_none
    assert len(got) == n
    # A leak shows as a drift of about -n (one lost reference per call); allow noise.
    assert abs(drift_true) < n // 5, f"refcount of True drifted by {drift_true} over {n} emits"
    assert abs(drift_none) < n // 5, f"refcount of None drifted by {drift_none} over {n} void calls"
