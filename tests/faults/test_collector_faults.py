"""Faults under load: PostgreSQL stopped, the collector killed. Nothing acknowledged may be lost.

Each test runs its own PostgreSQL (fault_rig.private_postgres) and stops only that one. The
numbers each run measured are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import time
from pathlib import Path

from e2e.harness import free_port
from fault_rig import Collector, load, private_postgres, stored_ids

from sluice import spool_files

OUTAGE_S = 10


def wait_for_empty_spool(collector: Collector, data_dir: Path, timeout_s: float = 120) -> float:
    """Seconds until /health says ok and no spool file holds anything."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        health = collector.health()
        if health is not None and health["status"] == "ok" and spool_files.contents(data_dir).bytes == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the spool still holds {spool_files.contents(data_dir)} after {timeout_s} s")


def test_postgresql_stopped_for_ten_seconds_under_load_loses_nothing(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        collector = Collector(postgres.url, tmp_path / "data", free_port(), tmp_path / "collector.log")
        try:
            with load(collector.port, clients=16) as tally:
                time.sleep(3)
                postgres.stop()
                time.sleep(OUTAGE_S / 2)
                during = collector.health()
                time.sleep(OUTAGE_S / 2)
                postgres.start()
                emptied_s = wait_for_empty_spool(collector, tmp_path / "data")  # while the load goes on
                time.sleep(2)
            stored = stored_ids(postgres)
        finally:
            assert collector.stop() in (0, -15)
    missing = tally.acknowledged - stored
    print(
        f"\nPostgreSQL stopped {OUTAGE_S} s under 16 clients: {tally.requests} requests, {tally.statuses},"
        f" {tally.share_2xx:.2%} 2xx, {len(tally.acknowledged)} events acknowledged, {len(missing)} missing;"
        f" spool empty at most {emptied_s:.1f} s after the restart"
    )
    assert during is not None
    assert (during["status"], during["database"]) == ("degraded", "unreachable")
    assert missing == set()
    assert tally.share_2xx >= 0.99
    log = (tmp_path / "collector.log").read_text()
    assert log.count("Traceback") == 0
    assert log.count("\n") < 100  # a fault once, then a summary every few seconds: not a line per request


def test_the_collector_killed_or_stopped_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "collector.log"
    with private_postgres() as postgres:
        collector = Collector(postgres.url, data_dir, port, log)
        with load(port, clients=16) as tally:
            time.sleep(3)
            collector.kill()  # PostgreSQL up: what was acknowledged was committed
            collector = Collector(postgres.url, data_dir, port, log)
            time.sleep(2)
            postgres.stop()
            time.sleep(3)
            collector.kill()  # PostgreSQL down: what was acknowledged is only in the spool
            spooled = spool_files.contents(data_dir)
            collector = Collector(postgres.url, data_dir, port, log)
            time.sleep(2)
            terminated = collector.stop()  # SIGTERM, PostgreSQL still down: the queue goes to the spool
            left = spool_files.contents(data_dir)
            postgres.start()
            collector = Collector(postgres.url, data_dir, port, log)
            time.sleep(2)
        try:
            emptied_s = wait_for_empty_spool(collector, data_dir)
            stored = stored_ids(postgres)
        finally:
            assert collector.stop() in (0, -15)
    missing = tally.acknowledged - stored
    print(
        f"\nkill -9 twice, then SIGTERM, under 16 clients: {tally.requests} requests, {tally.statuses},"
        f" {len(tally.acknowledged)} events acknowledged, {spooled.events} left in a killed process's spool,"
        f" {left.events} in two files after SIGTERM,"
        f" {len(missing)} missing; replayed {emptied_s:.1f} s after the last restart"
    )
    assert spooled.events > 0  # the second kill did leave events that only the spool held
    assert terminated in (0, -15)
    assert left.files == 2  # the killed process's, and the one SIGTERM stopped, each left for the next
    assert left.events > spooled.events
    assert missing == set()
