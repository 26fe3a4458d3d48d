"""`orders demo`: realistic orders (customers, items, cancels, shipments over several days),
written fast through the bulk path of the write store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from app.domain import order as domain
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.write.bulk import Versioned, append_batch
from app.write.store import OrderStore

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia",
         "Linus", "Frances", "John", "Katherine", "Tim", "Hedy", "Dennis", "Sophie", "Niklaus",
         "Shafi", "Leslie", "Tony", "Jean", "Ivan", "Annie", "Guido", "Yukihiro", "Anders"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson",
        "Perlman", "Torvalds", "Allen", "Backus", "Johnson", "Berners-Lee", "Lamarr", "Ritchie",
        "Wilson", "Wirth", "Goldwasser", "Lamport", "Hoare", "Sammet", "Sutherland", "Easley"]
PRODUCTS = ["Espresso beans", "Filter coffee", "Green tea", "Ceramic mug", "Travel mug",
            "Milk frother", "Gooseneck kettle", "Paper filters", "Hand grinder", "Scale",
            "Cold brew jar", "Tea infuser", "Oat milk", "Cocoa powder", "Biscotti", "Syrup"]
VARIANTS = ["250g", "500g", "1kg", "small", "large", "black", "white", "blue", "organic"]
REASONS = ["changed my mind", "ordered twice", "found it cheaper", "delivery too slow",
           "wrong size", "gift no longer needed"]


class Catalog:
    """A fixed, seeded set of products and customers."""

    def __init__(self, rng: random.Random, customers: int = 5000) -> None:
        self.items = [(f"SKU-{1000 + n}", f"{product} {variant}",
                       Decimal(rng.randint(150, 9000)) / 100)
                      for n, (product, variant) in enumerate(
                          (p, v) for p in PRODUCTS for v in rng.sample(VARIANTS, 4))]
        self.customers = [(f"cust-{n:05d}", f"{rng.choice(FIRST)} {rng.choice(LAST)}")
                          for n in range(customers)]


def decide_order(rng: random.Random, catalog: Catalog, order_id: UUID,
                 placed_at: datetime, not_after: datetime | None = None) -> list[Versioned]:
    """One order's events: placed, then maybe cancelled (12%) or shipped (45%), never later
    than `not_after` (the moment the data is generated, when given)."""
    customer_id, name = rng.choice(catalog.customers)
    lines = tuple(OrderLine(sku, item, rng.randint(1, 3), price)
                  for sku, item, price in rng.sample(catalog.items, rng.randint(1, 4)))
    placed = domain.place(PlaceOrder(customer_id, lines, name), order_id, placed_at)
    events = [Versioned(placed, 1)]
    state = domain.evolve(None, placed)
    roll = rng.random()
    later = placed_at + timedelta(hours=rng.uniform(1, 48))
    if not_after is not None:
        later = max(placed_at, min(later, not_after))
    if roll < 0.12:
        events.append(Versioned(domain.cancel(state, CancelOrder(order_id, rng.choice(REASONS)),
                                              later), 2))
    elif roll < 0.57:
        tracking = f"1Z{rng.randrange(10**12):012d}"
        events.append(Versioned(domain.ship(state, ShipOrder(order_id, tracking), later), 2))
    return events


async def generate(store: OrderStore, orders: int, *, days: int = 7, seed: int = 42,
                   batch_size: int = 500, concurrency: int = 4,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write `orders` orders (about 1.6 events each); return the number of events."""
    rng = random.Random(seed)
    catalog = Catalog(rng)
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    span = days * 86400
    queue: asyncio.Queue[list[Versioned] | None] = asyncio.Queue(maxsize=concurrency * 2)
    written = 0

    async def writer() -> None:
        nonlocal written
        while (batch := await queue.get()) is not None:
            await append_batch(store, batch, {"actor": "demo"})
            written += len(batch)
            if progress:
                progress(len(batch))

    workers = [asyncio.create_task(writer()) for _ in range(concurrency)]
    batch: list[Versioned] = []
    async def put(item: list[Versioned] | None) -> None:
        # A writer that failed must not leave the producer waiting on a full queue.
        putting = asyncio.ensure_future(queue.put(item))
        await asyncio.wait([putting, *workers], return_when=asyncio.FIRST_COMPLETED)
        for worker in workers:
            if worker.done() and worker.exception() is not None:
                putting.cancel()
                raise worker.exception()  # type: ignore[misc]
        await putting

    for n in range(orders):
        order_id = uuid4()  # content is seeded; ids stay unique across runs
        placed_at = min(now, start + timedelta(seconds=span * n / max(orders, 1) + rng.random()))
        batch += decide_order(rng, catalog, order_id, placed_at, not_after=now)
        if len(batch) >= batch_size:
            await put(batch)
            batch = []
    if batch:
        await put(batch)
    for _ in workers:
        await put(None)
    await asyncio.gather(*workers)
    return written
