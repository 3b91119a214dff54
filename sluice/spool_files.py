"""The collector's spool on disk: where its files are, the record format, and what they hold.

When PostgreSQL cannot take a write, the collector appends the batch to a spool file of its own
under `SLUICE_DATA_DIR/spool` and replays it once PostgreSQL answers again (collector/spool.py
writes and replays). This module is the shared base's part: the format, and reading it, so that
the ETL's status can say how many events wait there without importing the collector. Both parts
already share the data folder (the embedded PostgreSQL lives there too); the ETL only reads the
files' headers, never locks, writes or removes them.

A spool file is a sequence of records, each:

    magic b"SPL1" | payload length u32 | CRC-32 u32 | events u32 | oldest received_at i64 | payload

the integers big-endian, `oldest` in microseconds since 1970 UTC, the CRC over the events count,
`oldest` and the payload. The payload is COPY rows in PostgreSQL's binary format, as the writer sends
them, without the stream's header and trailer, so that records concatenate into one COPY. A
process killed mid-append leaves a torn last record: its length runs past the end of the file, or
its CRC does not match; readers stop there and ignore the rest.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, NamedTuple

MAGIC = b"SPL1"
HEADER = struct.Struct("!4sIIIq")  # magic, payload length, CRC-32, events, oldest received_at (µs)
_META = struct.Struct("!Iq")  # the part of the header the CRC covers, with the payload
SUFFIX = ".spool"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool"


def encode(payload: bytes, events: int, oldest: datetime) -> bytes:
    """One record: its header, then the payload."""
    delta = oldest - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    crc = zlib.crc32(payload, zlib.crc32(_META.pack(events, micros)))
    return HEADER.pack(MAGIC, len(payload), crc, events, micros) + payload


class Record(NamedTuple):
    offset: int  # where the record starts in its file
    end: int  # where the next one starts
    events: int
    oldest: datetime
    payload: bytes


def read_records(
    file: BinaryIO, offset: int = 0, max_bytes: int | None = None, until: int | None = None
) -> Iterator[Record]:
    """The whole records from `offset` on, in order, until a torn or damaged one or the end.

    With `max_bytes`, stops before the record that would take the payloads past it (the first one
    is always read, whatever its size); with `until`, before one that would end past that offset.
    """
    file.seek(offset)
    taken = 0
    while True:
        header = file.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        magic, length, crc, events, micros = HEADER.unpack(header)
        if magic != MAGIC or (max_bytes is not None and taken and taken + length > max_bytes):
            return
        payload = file.read(length)
        end = offset + HEADER.size + length
        if until is not None and end > until:
            return
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(_META.pack(events, micros))) != crc:
            return
        yield Record(offset, end, events, _EPOCH + timedelta(microseconds=micros), payload)
        offset, taken = end, taken + length


@dataclass(frozen=True)
class SpoolContents:
    """What waits in a spool directory: acknowledged events not yet in PostgreSQL."""

    files: int
    bytes: int
    events: int

    def as_json(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes, "events": self.events}


def spool_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
    except FileNotFoundError:
        return []


def count_events(file: BinaryIO, offset: int = 0) -> int:
    """Events in the whole records from `offset` on, reading only their headers."""
    events = 0
    file.seek(0, 2)
    size = file.tell()
    while offset + HEADER.size <= size:
        file.seek(offset)
        magic, length, _, record_events, _ = HEADER.unpack(file.read(HEADER.size))
        if magic != MAGIC or offset + HEADER.size + length > size:
            break
        events += record_events
        offset += HEADER.size + length
    return events


def contents(data_dir: Path) -> SpoolContents:
    """Files, bytes and events waiting in `data_dir`'s spool (headers only: no CRC check).

    A file being replayed counts whole until its replay ends, so the numbers may include events
    that reached PostgreSQL moments ago; never fewer than wait.
    """
    files = total = events = 0
    for path in spool_files(spool_dir(data_dir)):
        try:
            with path.open("rb") as file:
                size = file.seek(0, 2)
                if size == 0:
                    continue
                events += count_events(file)
        except FileNotFoundError:  # replayed and removed meanwhile
            continue
        files += 1
        total += size
    return SpoolContents(files, total, events)
