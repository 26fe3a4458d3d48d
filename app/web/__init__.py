"""The dashboard page: one HTML file, our own small ES modules, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"
router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The live dashboard with a search box."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
