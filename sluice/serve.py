"""`sluice serve`: the collector, the control endpoints and the ETL scheduler, from start to stop.

Start: the admin token, the database (the embedded server when DATABASE_URL is empty), the
migrations (a failure ends the start, with the reason), then uvicorn. Stop, on SIGTERM or SIGINT
alike: uvicorn closes its listening socket, answers the requests it has already received and runs
the app's shutdown (the scheduler stops, the writer commits what it holds); then the embedded
server stops, unless another sluice process still uses it, and the process exits 0. With several
workers, uvicorn's supervisor passes the signal to each worker, waits for all of them, and returns.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from sluice import embedded_pg
from sluice.admin_token import token_path, with_admin_token
from sluice.migrations import migrate
from sluice.settings import Settings
from sluice.stopping import Stopped

APP = "sluice.app:create_app"
STARTUP_FAILURE = 3  # uvicorn's exit code for a server that could not start (uvicorn.config.STARTUP_FAILURE)


def serve(settings: Settings) -> int:
    import uvicorn

    token_from_env = bool(settings.admin_token)
    _metrics_folder(settings)
    settings = with_admin_token(settings)
    try:
        with embedded_pg.database_for(settings) as settings:
            applied = migrate(settings)
            if applied:
                _say(f"applied migrations {', '.join(applied)}")
            _export(settings)
            _announce(settings, token_from_env)
            options: dict[str, Any] = {
                "factory": True,
                "host": settings.host,
                "port": settings.port,
                "workers": settings.workers,
                "proxy_headers": False,  # the collector trusts X-Forwarded-For itself, from configured proxies only
                "server_header": False,
                "http": "sluice.read_limits:ReadDeadlines",  # read deadlines, a bound on connections
                "access_log": False,  # an access log would write every visitor's raw IP; nginx in front keeps its own
                "log_level": "info",
            }
            if settings.workers == 1:
                uvicorn.run(APP, **options)  # a failed start exits 3 (uvicorn's STARTUP_FAILURE)
            elif not _supervise(options):
                _say("a worker failed to start (its log says why); the others were stopped")
                return STARTUP_FAILURE
    except Stopped as stop:
        _say(f"stopped ({stop})")
    return 0


def _supervise(options: dict[str, Any]) -> bool:
    """uvicorn's supervisor of several workers, as `uvicorn.run` starts it; False when it stopped
    because a worker failed to start. uvicorn then stops the others and returns as after a SIGTERM,
    and `uvicorn.run` would exit 0: a service manager would not see the failure."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(APP, **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    return not any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)


def _export(settings: Settings) -> None:
    """The app (and each worker process) reads its settings from the environment: hand down what
    was resolved here, the embedded server's URL and the admin token."""
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["SLUICE_ADMIN_TOKEN"] = settings.admin_token


def _metrics_folder(settings: Settings) -> None:
    """An empty folder where every worker keeps its metrics (sluice/metrics.py), named in the
    environment they inherit; emptied now, before any worker starts, or an earlier server's values
    would be counted again. With one worker, uvicorn runs the app in this process, where the CLI has
    imported prometheus-client already: its values stay in memory, and sluice/metrics.py knows."""
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


def _announce(settings: Settings, token_from_env: bool) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    _say(f"serving {url}: events to {url}/collect")
    if token_from_env:
        _say("/etl/* and /events/* take the bearer token in SLUICE_ADMIN_TOKEN")
    else:
        where = token_path(settings)
        _say(f"/etl/* and /events/* take the bearer token {settings.admin_token} (kept in {where}; `sluice token`)")


def _say(message: str) -> None:
    print(f"sluice: {message}", file=sys.stderr, flush=True)
