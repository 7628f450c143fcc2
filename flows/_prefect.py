"""Private Prefect glue: offline defaults, persisted result storage, retry conditions.

Kept apart so the rest of ``flows/`` reads as plain wiring (PrefectHQ/examples
``apps/background-tasks/src/foo/_internal/_prefect.py`` pattern).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

__all__ = ["offline_defaults", "result_storage", "retry_on_io", "is_io_error"]

_OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def offline_defaults() -> None:
    """Set Prefect's offline-friendly defaults unless the user already chose otherwise.

    Telemetry off (it only logs resolution errors offline) and a generous ephemeral-server
    start-up timeout (a loaded 2-core machine misses the default one).
    """
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def result_storage(path: str | Path) -> Any:
    """A saved ``LocalFileSystem`` block rooted at ``path`` (Prefect 3 needs saved blocks).

    The block name is derived from the path, so every night's work dir gets its own storage and
    re-opening the same night finds the same cache records.
    """
    from prefect.filesystems import LocalFileSystem

    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    name = "xgeo-results-" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    block = LocalFileSystem(basepath=str(path))
    block.save(name, overwrite=True)
    return block


def is_io_error(exc: BaseException | None) -> bool:
    """Transient I/O or cluster-communication error (worth a retry), not a bad input."""
    if exc is None:
        return False
    from xgeo.errors import XgeoError

    if isinstance(exc, XgeoError):
        return False  # bad input or untrustworthy fit: deterministic, retrying cannot help
    if isinstance(exc, OSError | TimeoutError):
        return True
    name = type(exc).__name__
    return name in {"CommClosedError", "KilledWorker", "FutureCancelledError", "CancelledError"}


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks: retry I/O and cluster errors only."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - inspected, not swallowed
        return is_io_error(exc)
    return False
