"""Serve an app on a real loopback port inside the test's event loop (for SSE and browsers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from tests.helpers.support import eventually


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` with uvicorn until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound before serving: no race for a free port
    port = sock.getsockname()[1]
    # A short graceful shutdown: an open SSE stream must not hold the test's teardown.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", log_config=None,
                                           timeout_graceful_shutdown=3))
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        if task.done():
            task.result()  # raises what stopped the server
            raise AssertionError("the live server stopped while starting")
        return server.started

    try:
        await eventually(started, 20, "the live server start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()


def free_port() -> int:
    """A loopback port nobody listens on right now (for child processes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
