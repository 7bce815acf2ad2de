"""Guard against a reference-counting bug of PySide6 6.12.0 on Python 3.11.

Measured here (PySide6-Essentials 6.12.0, CPython 3.11): every call of a Qt method returning
``void`` hands back ``None`` without a new reference, and ``SignalInstance.emit()`` does the same
with ``True``. Each call therefore takes one reference from ``None``/``True``; after a few
thousand calls (a minute of normal GUI use, or one test run) the count reaches zero and CPython
aborts with "Fatal Python error: none_dealloc" (or bool_dealloc). PySide6 6.11.2 is fine, and so
is Python 3.12+, where these singletons are immortal.

``apply()`` detects the bug and, only if present, gives ``None``, ``True`` and ``False`` a huge
reference count, which is what Python 3.12 does for them anyway (they are static objects that
are never freed). The real fix is a PySide6 without the bug (``PySide6-Essentials!=6.12.0``).
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_BOOST = 1 << 40
_applied = False


def leaks_singletons() -> bool:
    """True if calling void Qt methods or emitting signals drops references to None/True."""
    from PySide6.QtCore import QObject, QSize, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    size = QSize(1, 1)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(20):
        size.setWidth(2)
        probe.ping.emit()
    lost = (none_before - sys.getrefcount(None)) + (true_before - sys.getrefcount(True))
    return lost >= 20


def apply() -> bool:
    """Work around the bug if this PySide6 has it; True if the workaround was needed."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal singletons: the lost references do no harm
    if not leaks_singletons():
        return False
    import PySide6

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _BOOST
    _applied = True
    log.warning("PySide6 %s drops references to None/True on this Python; worked around "
                "(install PySide6-Essentials 6.11 or a fixed release)", PySide6.__version__)
    return True
