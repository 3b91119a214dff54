"""The writer with its fast write on psycopg's public COPY API: what collector/pgwire.py is measured against.

Everything else is the real writer's (GroupCommitWriter): the queue, one batch in flight, two
connections taking turns, the optimistic write and its careful fallback, the claim. Only the fast
write's transport differs, built as well as the public API allows:

- the next write is armed in a task while the current batch commits, as the real writer arms
  its query: `begin` (a round trip) and `cursor.copy(...)` entered (a round trip, up to COPY's
  go-ahead); the public API cannot send them as one query (it refuses a COPY mixed with other
  statements);
- once the rows are ready: `copy.write(rows)`, then leaving the COPY (the stream's end, and a
  round trip for its result), then the claim and the commit as one simple query (a round trip).

So a transaction costs two round trips once its rows are ready, against pgwire's one (and with
`set_types` and `write_row` instead of the pre-encoded rows, one more pass over the rows too).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncCopy

from sluice.collector import writer
from sluice.collector.writer import _CLAIM_WINDOW, _COLUMNS, GroupCommitWriter, _rollback

_COPY = f"copy events ({_COLUMNS}) from stdin (format binary)"


class _Armed:
    """One connection's open transaction, COPY started: what the public API can prepare ahead."""

    def __init__(self, stack: AsyncExitStack, copy: AsyncCopy, claim_and_commit: bytes) -> None:
        self.stack, self.copy, self.claim_and_commit = stack, copy, claim_and_commit


class PublicCopyWriter(GroupCommitWriter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arming: list[asyncio.Task[_Armed] | None] = [None, None]

    async def _arm(self, conn: psycopg.AsyncConnection[Any], slot: int) -> None:
        await self._ensure_partitions(conn)
        floor = datetime.now(UTC) - _CLAIM_WINDOW
        claim = f"execute sluice_claim_ids('{floor.isoformat()}'); commit".encode()
        self._arming[slot] = asyncio.create_task(self._begin_copy(conn, claim))
        self._claim_floors[slot] = floor

    @staticmethod
    async def _begin_copy(conn: psycopg.AsyncConnection[Any], claim_and_commit: bytes) -> _Armed:
        await conn.execute("begin")
        stack = AsyncExitStack()
        copy = await stack.enter_async_context(conn.cursor().copy(_COPY))
        return _Armed(stack, copy, claim_and_commit)

    async def _armed_copy(self, slot: int) -> _Armed:
        task, self._arming[slot] = self._arming[slot], None
        assert task is not None
        return await task

    async def _fast_write(self, conn: psycopg.AsyncConnection[Any], data: bytes, *, next_slot: int) -> bool:
        try:
            armed = await self._armed_copy(1 - next_slot)
            await armed.copy.write(data)
            await armed.stack.aclose()  # the COPY's end, and its result
            await self._arm_next(next_slot)
            await conn.execute(armed.claim_and_commit)
        except psycopg.errors.UniqueViolation:
            await _rollback(conn)
            return False
        except psycopg.DatabaseError:
            await _rollback(conn)
            raise
        return True

    async def _disarm(self) -> None:
        slot, self._armed = self._armed, None
        conn = self._conns[slot] if slot is not None else None
        if slot is None or conn is None:
            return
        try:
            armed = await self._armed_copy(slot)
            await armed.copy.write(writer.framed())
            await armed.stack.aclose()
            await conn.execute("commit")
        except psycopg.Error:
            await self._drop_connection(slot)

    async def _drop_connection(self, slot: int) -> None:
        task, self._arming[slot] = self._arming[slot], None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await super()._drop_connection(slot)
