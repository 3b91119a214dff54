"""`sluice serve` with several workers (SLUICE_WORKERS > 1) exits non-zero when they fail to start:
uvicorn's supervisor then stops the others and returns as after a SIGTERM, which used to exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e.harness import free_port

from sluice.settings import Settings


def test_workers_that_fail_to_start_make_serve_exit_non_zero(settings: Settings, tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-database.mmdb"
    garbage.write_bytes(b"this is no MaxMind database")  # each worker's start opens it, and fails
    env = {
        **{k: v for k, v in os.environ.items() if k != "SLUICE_ADMIN_TOKEN"},
        "DATABASE_URL": settings.database_url,
        "SLUICE_SCHEMA": settings.schema,
        "SLUICE_DATA_DIR": str(tmp_path / "data"),
        "SLUICE_ETL_SCHEDULE": "off",
        "SLUICE_WORKERS": "2",
        "SLUICE_GEOIP_DB": str(garbage),
    }
    command = [sys.executable, "-m", "sluice.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "failed to start" in result.stderr
    assert result.stderr.rstrip().endswith(
        "sluice: a worker failed to start (its log says why); the others were stopped"
    ), result.stderr[-2000:]
