"""Advisory-lock keys: one per kind of exclusivity, named so `pg_locks` can be read back."""

from __future__ import annotations

import hashlib


def _key(name: str) -> int:
    # 63 bits of the name's hash: a stable bigint no other Sluice lock shares.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


RUN_LOCK = _key("sluice-etl-run")  # held by the one ETL run, rebuild, daily recompute or cleanup in progress
LEADER_LOCK = _key("sluice-etl-scheduler-leader")  # held by the serving process whose scheduler runs the ETL
