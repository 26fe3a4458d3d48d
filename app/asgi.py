"""The ASGI entry point for uvicorn (`orders api`): `create()`, called once per worker.

Settings come from the environment when a worker builds its app (not at import), so that
everything create_app takes from them at build time (the body-size limit) is honoured too.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.kernel.runtime import tune_gc
from app.kernel.settings import load_settings
from app.logs import setup_logging
from app.main import create_app


def create() -> FastAPI:
    """The app one uvicorn worker serves; its role is the settings' `ORDERS_API_ROLE`."""
    setup_logging()  # in each `--workers` child process too
    settings = load_settings()
    app = create_app(settings, role=settings.role)
    tune_gc()
    return app
