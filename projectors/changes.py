"""Turn a batch of log rows into order changes: each event with the order before and after.

Projections write whole documents and need totals of earlier events (a cancel takes the
placed total off net revenue), so each batch folds the touched orders' streams from the log
with the domain's own `evolve`. The log, not the write model, is the source.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from app.domain.events import Event, load_event_json
from app.domain.order import Order, evolve
from projectors.log import LoggedEvent

STREAMS = """
SELECT stream_id, version, type, schema_version, data::text AS data FROM events
WHERE stream_id = ANY($1::uuid[]) ORDER BY stream_id, version"""


@dataclass(frozen=True)
class Change:
    """One applied event: what the order was before it and is after it."""

    logged: LoggedEvent
    event: Event
    before: Order | None
    after: Order


@dataclass(frozen=True)
class Poison:
    """An event no projection can apply (unreadable, or impossible for its stream)."""

    logged: LoggedEvent
    error: str


def _load(row: Any) -> Event:
    return load_event_json(row["type"], row["schema_version"], row["data"])


def fold(batch: list[LoggedEvent],
         history: dict[UUID, list[Any]]) -> tuple[list[Change], Poison | None]:
    """Changes for the batch in order, stopping at the first poison event."""
    changes: list[Change] = []
    for logged in batch:
        try:
            before: Order | None = None
            for row in history.get(logged.stream_id, []):
                if row["version"] >= logged.version:
                    break
                before = evolve(before, _load(row))
            event = load_event_json(logged.type, logged.schema_version, logged.data)
            after = evolve(before, event)
            if after.version != logged.version:
                raise ValueError(f"stream version {logged.version} but fold gives {after.version}")
        except Exception as exc:
            return changes, Poison(logged, f"{type(exc).__name__}: {exc}"[:2000])
        changes.append(Change(logged, event, before, after))
    return changes, None


async def load_changes(pool: asyncpg.Pool[Any],
                       batch: list[LoggedEvent]) -> tuple[list[Change], Poison | None]:
    """Fold the streams the batch touches and return its changes (and a poison, if any)."""
    streams = list({e.stream_id for e in batch if e.version > 1})
    history: dict[UUID, list[Any]] = defaultdict(list)
    if streams:
        for row in await pool.fetch(STREAMS, streams):
            history[row["stream_id"]].append(row)
    return fold(batch, history)
