"""Projector tests use the read-side fixtures registered in tests/conftest.py."""

from __future__ import annotations

from tests.helpers.readside_fixtures import FAST, RunProjector

__all__ = ["FAST", "RunProjector"]
