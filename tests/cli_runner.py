"""Running the command-line interface the way a user does: a child process, ``python -m``."""

from __future__ import annotations

import subprocess
import sys


def run_cli(env, *args, check_rc: int | None = 0, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    """``vector-studio ARGS`` in a child process; its exit status must be ``check_rc``
    (None: any)."""
    proc = subprocess.run([sys.executable, "-m", "vector_studio_gui", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc
