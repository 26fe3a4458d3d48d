"""The ASGI entry point for uvicorn (`orders api`): role from ORDERS_API_ROLE."""

from __future__ import annotations

import os

from app.cli import role_from_env
from app.logs import setup_logging
from app.main import create_app
from app.runtime import tune_gc

setup_logging()  # also in each `--workers` child process
app = create_app(role=role_from_env(os.environ.get("ORDERS_API_ROLE")))
tune_gc()
