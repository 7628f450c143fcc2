"""Flow test fixtures: an isolated Prefect home + test harness, a loopback dask cluster,
and a job catalog of generated and real pairs plus one corrupt scene."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# before Prefect is imported anywhere in this session
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="xgeo-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's temporary test server and database, shared by the session's flow runs."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LoopbackCluster:
    """``dask scheduler`` + ``dask worker`` processes on 127.0.0.1."""

    address: str
    dashboard: str
    scheduler: subprocess.Popen
    workers: dict[str, subprocess.Popen]


def _worker(address: str, name: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", address, "--name", name, "--nthreads", "1",
         "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "4GiB"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def loopback_cluster() -> Iterator[LoopbackCluster]:
    """A real multi-process cluster: one scheduler and two single-threaded worker processes."""
    from distributed import Client

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    port, dash = _free_port(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", f"127.0.0.1:{dash}"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers = {name: _worker(address, name, env) for name in ("w0", "w1")}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout="5s", set_as_default=False) as c:
                    c.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield LoopbackCluster(address, f"http://127.0.0.1:{dash}/status", sched, workers)
    finally:
        for p in (*workers.values(), sched):
            if p.poll() is None:
                p.terminate()
        for p in (*workers.values(), sched):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
