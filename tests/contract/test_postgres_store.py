"""The write-store contract, kept by the PostgreSQL store."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from app.write.store import OrderStore
from tests.contract.event_store_contract import Count, EventStoreContract


class TestPostgresOrderStore(EventStoreContract):
    @pytest.fixture
    def repository(self, clean_db: asyncpg.Pool[Any]) -> OrderStore:
        return OrderStore(clean_db)

    @pytest.fixture
    def appended(self, clean_db: asyncpg.Pool[Any]) -> Count:
        async def count() -> int:
            return int(await clean_db.fetchval("SELECT count(*) FROM events"))
        return count
