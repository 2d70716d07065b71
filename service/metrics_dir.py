"""The shared directory for prometheus_client's multi-process mode, prepared by `tdm1-cds serve`.

Kept apart from service.metrics on purpose: prometheus_client chooses between in-process and
multi-process values when it is first imported, so this must run before anything imports it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int, environ: dict[str, str] | None = None) -> Path | None:
    """Before gunicorn forks: a clean directory shared by the workers, named in the environment.

    An operator's PROMETHEUS_MULTIPROC_DIR (an emptyDir in Kubernetes) is used and emptied, as files
    left by a previous run would add old counts to new ones. Otherwise, with more than one worker, a
    temporary directory is made; the caller removes it (`remove`) when the server stops. Returns the
    directory made here, if any.
    """
    env = os.environ if environ is None else environ
    configured = env.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    if workers <= 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="tdm1-cds-metrics-"))
    env[MULTIPROC_ENV] = str(created)
    return created


def remove(path: Path | None, owner_pid: int) -> None:
    """Remove the directory made by `prepare`, from the process that made it only: gunicorn's
    workers leave through the same code path when they exit, while the master still needs it."""
    if path is not None and os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)
