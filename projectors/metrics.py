"""Prometheus metrics of the projector (served on its own port by `orders project`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("orders_projection_events_applied_total",
                         "Events applied to a read model", ["projection"])
EVENTS_STALE = Counter("orders_projection_events_stale_total",
                       "Events a read model already had (replays, late arrivals)", ["projection"])
BATCH_SIZE = Histogram("orders_projection_batch_size", "Events per applied batch",
                       ["projection"], buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
BATCH_SECONDS = Histogram("orders_projection_batch_seconds", "Time to apply one batch",
                          ["projection"])
RETRIES = Counter("orders_projection_retries_total", "Batches retried after a sink outage",
                  ["projection"])
DEAD_LETTERS = Counter("orders_projection_dead_letters_total", "Events sent to dead letters",
                       ["projection"])
LAG_EVENTS = Gauge("orders_projection_lag_events", "Committed events not yet applied",
                   ["projection"])
LAG_SECONDS = Gauge("orders_projection_lag_seconds", "Age of the oldest unapplied event",
                    ["projection"])
REWINDS = Counter("orders_projection_rewinds_total",
                  "Times a read model's store held less than applied and was re-applied",
                  ["projection"])
REBUILDS = Counter("orders_projection_rebuilds_total",
                   "Times a read model was gone and rebuilt from the log", ["projection"])
