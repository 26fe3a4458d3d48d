"""The write-store contract, kept by the in-memory store."""

from __future__ import annotations

import pytest

from app.write.memory import MemoryOrderStore
from tests.contract.event_store_contract import Count, EventStoreContract


class TestMemoryOrderStore(EventStoreContract):
    @pytest.fixture
    def repository(self) -> MemoryOrderStore:
        return MemoryOrderStore()

    @pytest.fixture
    def appended(self, repository: MemoryOrderStore) -> Count:
        async def count() -> int:
            return len(repository.events)
        return count
