"""The ASGI entry point for uvicorn (`orders api`): `create()`, called once per worker.

Settings come from the environment when a worker builds its app (not at import), so that
everything create_app takes from them at build time (the body-size limit) is honoured too.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from app.cli import role_from_env
from app.logs import setup_logging
from app.main import create_app
from app.runtime import tune_gc
from app.settings import Settings


def create() -> FastAPI:
    """The app one uvicorn worker serves; role from ORDERS_API_ROLE."""
    setup_logging()  # in each `--workers` child process too
    settings = Settings()  # type: ignore[call-arg]
    app = create_app(settings, role=role_from_env(os.environ.get("ORDERS_API_ROLE")))
    tune_gc()
    return app
