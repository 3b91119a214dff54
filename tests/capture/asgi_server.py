"""Real HTTP for the client and middleware tests: an ASGI app under uvicorn on a loopback port, in a
thread of the test process, and a front that refuses the first requests before letting them through."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from e2e.harness import free_port, wait_until
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """`app` (its lifespan included) on 127.0.0.1; yields the base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass(frozen=True)
class Seen:
    """One request the front received."""

    events: int
    body_bytes: int  # decompressed
    content_encoding: str | None
    authorization: str | None
    answered: int


@dataclass
class Front:
    """ASGI in front of the collector. Each `script` entry answers one `POST /collect`, in order:
    "503" refuses it, "429" refuses it with `Retry-After: 1`, "stored-503" lets the collector store
    it and then answers 503 as if the answer were lost. Afterwards, every request goes through.
    With `hold` set, the first request waits until it is set (`arrived` says it is waiting)."""

    app: ASGIApp
    script: list[str] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/collect":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        plain = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        doc: Any = orjson.loads(plain)
        first = not self.seen and not self.arrived.is_set()
        if first and self.hold is not None:
            self.arrived.set()
            await asyncio.to_thread(self.hold.wait)
        step = self.script.pop(0) if self.script else "forward"
        status = 503 if step in ("503", "stored-503") else 429 if step == "429" else 0

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        answered: list[int] = []

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
            if not status:
                await send(message)

        if step in ("forward", "stored-503"):
            await self.app(scope, replay, recording)
        if status:
            extra = [(b"retry-after", b"1")] if status == 429 else [(b"retry-after", b"0")]
            await send({"type": "http.response.start", "status": status, "headers": extra})
            await send({"type": "http.response.body", "body": b'{"error":"database_unavailable"}'})
            answered.append(status)
        events = len(doc["events"]) if isinstance(doc, dict) and "events" in doc else 1
        self.seen.append(
            Seen(events, len(plain), headers.get("content-encoding"), headers.get("authorization"), answered[-1])
        )
