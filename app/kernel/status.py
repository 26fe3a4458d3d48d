"""The `projection_status` table's SQL, in one place: the projector writes one row per
projection (or partition, `name:pI`) on every change of state and every few seconds; the
read API and `orders status` read them; a rebuild reads which target the live side uses.

States: starting, catching_up, running, stalled, sink_down, source_down, source_moved,
rewound, rebuilding, error, stopped_on_poison, stopped.
"""

from __future__ import annotations

UPSERT = """
INSERT INTO projection_status (name, state, detail, owner, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail,
    owner = EXCLUDED.owner, updated_at = now()"""
SELECT_ALL = """
SELECT s.name, s.state, s.detail, s.owner, s.updated_at,
       (SELECT count(*) FROM dead_letters d
        WHERE d.projection = split_part(s.name, ':', 1)) AS dead_letters
FROM projection_status s"""
# The targets a projection's partitions reported lately (a row older than 30 s is of a
# process that is gone).
RECENT_TARGETS = """
SELECT detail->>'target' AS target FROM projection_status WHERE (name = $1
OR name LIKE $1 || ':p%') AND updated_at > now() - interval '30 s'"""
