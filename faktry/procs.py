"""Child processes that die with their parent (Linux ``PR_SET_PDEATHSIG``).

`die_with_parent` is made for a `subprocess.Popen` ``preexec_fn``: it runs in the child
between fork and exec, where only async-signal-safe work is allowed (no imports, no library
loading, no locks). So libc's ``prctl`` is looked up once, in the parent, when this module
is imported; in the child it is only called. Where there is no ``prctl`` (not Linux) it does
nothing: stopping a child through its process group still works there.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


def _resolve_prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


#: libc's ``prctl``, or None where there is none; resolved at import, in the parent.
PRCTL = _resolve_prctl()


def die_with_parent() -> None:
    """In the child before exec: SIGKILL from the kernel when the thread that started it
    goes away, so a parent killed with SIGKILL leaves no child running."""
    if PRCTL is not None:
        PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
