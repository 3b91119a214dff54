"""The spool: acknowledged batches that PostgreSQL could not take, on local disk until it can.

Each process appends to a file of its own under `SLUICE_DATA_DIR/spool` (the record format is in
sluice/spool_files.py), and holds an exclusive `flock` on it for as long as it lives. An append is
fsync'd before it returns, so a request is answered only once its events are on disk. Appends are
grouped: what queues while one is being written goes in the next, with one fsync.

Replay hands out chunks of whole records, oldest first, for the writer to send to PostgreSQL;
`replayed` marks one done. Files whose lock can be taken belong to no live process (one killed with
`kill -9`, or stopped with PostgreSQL still down): `adopt` takes them over, and a file replayed to
its end is removed. The process's own file is truncated once everything in it has been replayed. A
crash between a replayed chunk's COMMIT and that bookkeeping replays the chunk again; the writer's
dedup by event id stores each event once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sluice.spool_files import SUFFIX, count_events, encode, read_records, spool_dir, spool_files

REPLAY_CHUNK_BYTES = (
    4 * 1024 * 1024
)  # COPY rows per replayed write: big enough to catch up fast, small enough to wait for


class SpoolFull(Exception):
    """The batch could not be spooled: the spool is at its size limit, or the disk refused the write."""


@dataclass
class _File:
    path: Path
    fd: int  # open read-write, flock'ed by this process
    own: bool
    size: int  # bytes written (for an adopted file: its size when adopted)
    events: int  # events in the records not yet replayed
    replayed: int = 0  # where the next record to replay starts


@dataclass(frozen=True)
class Chunk:
    """Whole records of one file, ready to be written: their COPY rows concatenated."""

    file: _File
    end: int
    data: bytes
    events: int
    oldest: datetime


@dataclass
class _Pending:
    record: bytes
    events: int
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Spool:
    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.directory = spool_dir(data_dir)
        self.max_bytes = max_bytes
        self._own: _File | None = None
        self._adopted: list[_File] = []
        self._foreign_bytes = 0  # in files other live processes hold: the limit is the directory's
        self._queue: list[_Pending] = []
        self._queued_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._file_lock = asyncio.Lock()  # an append and the truncation after a replay never overlap

    def open(self) -> None:
        """Creates this process's own file (locked) and adopts the files no live process holds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}{SUFFIX}"
        path = self.directory / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self.directory)  # the file's name is durable before any record is acknowledged in it
        self._own = _File(path, fd, own=True, size=0, events=0)
        self.adopt()

    async def close(self) -> None:
        """Finishes the appends under way, then releases the files (an own file left empty is removed)."""
        if self._flusher is not None:
            await self._flusher
        own, self._own = self._own, None
        if own is not None:
            if own.size == 0:
                own.path.unlink(missing_ok=True)
            os.close(own.fd)
        for adopted in self._adopted:
            os.close(adopted.fd)
        self._adopted = []

    # What waits.

    @property
    def waiting_bytes(self) -> int:
        """Bytes of records not yet replayed, in every file of the directory this process knows of."""
        return self.held_bytes + self._foreign_bytes

    @property
    def held_bytes(self) -> int:
        """Bytes of records not yet replayed in this process's own and adopted files (the files of
        other live processes are theirs to count: summed over the processes, each byte counts once)."""
        return sum(f.size - f.replayed for f in self._files())

    @property
    def waiting_events(self) -> int:
        """Events not yet replayed in this process's own and adopted files."""
        return sum(f.events for f in self._files())

    @property
    def has_backlog(self) -> bool:
        return any(f.size > f.replayed for f in self._files())

    def _files(self) -> list[_File]:
        return [*self._adopted, *([self._own] if self._own is not None else [])]

    # Appending.

    async def append(self, payload: bytes, events: int, oldest: datetime) -> None:
        """Returns once the record is on disk (fsync'd); raises SpoolFull if it cannot be."""
        record = encode(payload, events, oldest)
        if self.waiting_bytes + self._queued_bytes + len(record) > self.max_bytes:
            raise SpoolFull(f"the spool holds {self.waiting_bytes} bytes, its limit is {self.max_bytes}")
        pending = _Pending(record, events)
        self._queue.append(pending)
        self._queued_bytes += len(record)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="sluice-spool-append")
        await asyncio.shield(pending.done)  # a cancelled request's record is still written whole

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            data = b"".join(p.record for p in batch)
            try:
                async with self._file_lock:
                    await asyncio.to_thread(self._write, data)
            except OSError as exc:
                for pending in batch:
                    pending.done.set_exception(SpoolFull(f"the spool could not be written: {exc}"))
            else:
                assert self._own is not None
                self._own.events += sum(p.events for p in batch)
                for pending in batch:
                    pending.done.set_result(None)
            finally:
                self._queued_bytes -= len(data)

    def _write(self, data: bytes) -> None:
        own = self._own
        if own is None:
            raise OSError("the spool is closed")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(own.fd, view) :]
            os.fdatasync(own.fd)
        except OSError:
            os.ftruncate(own.fd, own.size)  # a torn append (a full disk) leaves nothing behind
            raise
        own.size += len(data)

    # Replaying.

    async def next_chunk(self, max_bytes: int = REPLAY_CHUNK_BYTES) -> Chunk | None:
        """The oldest records not yet replayed (adopted files first), or None when none wait."""
        for file in list(self._adopted):
            chunk = await asyncio.to_thread(_read_chunk, file, max_bytes)
            if chunk is not None:
                return chunk
            self._finish_adopted(file)  # replayed to its end, or the rest is a torn tail
        own = self._own
        if own is not None and own.size > own.replayed:
            return await asyncio.to_thread(_read_chunk, own, max_bytes)
        return None

    async def replayed(self, chunk: Chunk) -> None:
        """`chunk` is committed in PostgreSQL: its records are done."""
        file = chunk.file
        file.replayed = chunk.end
        file.events -= chunk.events
        if not file.own:
            if file.replayed >= file.size:
                self._finish_adopted(file)
            return
        async with self._file_lock:
            if file.replayed == file.size:  # nothing appended meanwhile: start the file afresh
                await asyncio.to_thread(_truncate, file.fd)
                file.size = file.replayed = 0

    def _finish_adopted(self, file: _File) -> None:
        file.path.unlink(missing_ok=True)
        os.close(file.fd)
        self._adopted.remove(file)

    def adopt(self) -> None:
        """Takes over the spool files no live process holds, and counts the bytes in those others hold."""
        known = {f.path for f in self._files()}
        foreign = 0
        for path in spool_files(self.directory):
            if path in known:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # replayed and removed by another process meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process's own file, or one it is replaying
                foreign += os.fstat(fd).st_size
                os.close(fd)
                continue
            stat = os.fstat(fd)
            if stat.st_nlink == 0 or stat.st_size == 0:  # removed after we opened it, or empty: nothing to replay
                if stat.st_nlink:
                    path.unlink(missing_ok=True)
                os.close(fd)
                continue
            with os.fdopen(os.dup(fd), "rb") as reader:
                events = count_events(reader)
            self._adopted.append(_File(path, fd, own=False, size=stat.st_size, events=events))
        self._foreign_bytes = foreign


def _read_chunk(file: _File, max_bytes: int) -> Chunk | None:
    # The own file is read only up to what has been fsync'd: an append in progress is not replayed
    # (a reader shares the file offset, which the O_APPEND writes ignore).
    until = file.size if file.own else None
    with os.fdopen(os.dup(file.fd), "rb") as reader:
        records = list(read_records(reader, file.replayed, max_bytes, until))
    if not records:
        return None
    return Chunk(
        file,
        records[-1].end,
        b"".join(r.payload for r in records),
        sum(r.events for r in records),
        min(r.oldest for r in records),
    )


def _truncate(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.fdatasync(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
