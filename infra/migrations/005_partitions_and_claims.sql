-- Partitions of the log. Each event carries a stable hash of its stream id, fixed when it is
-- appended (a stored generated column: every INSERT fills it, the store's and the bulk
-- path's alike, and existing rows are filled here). A projection of P partitions (a power of
-- two) gives partition `stream_hash & (P - 1)` to the event, so one stream stays in one
-- partition and keeps its order. md5 is stable across PostgreSQL versions and platforms,
-- unlike hashtext, and is computed the same way in Python (app/kernel/partitions.py).
ALTER TABLE events ADD COLUMN stream_hash integer NOT NULL
    GENERATED ALWAYS AS (('x' || substr(md5(stream_id::text), 1, 8))::bit(32)::int) STORED;
-- One partition's events in the log's order, read with an index (P = 4, the default; a
-- projector started with another P creates its own index, see ensure_partition_index).
CREATE INDEX events_partition_4 ON events ((stream_hash & 3), transaction_id, position);

-- Who projects which partition: the owner holds it while its lease is renewed. `token` grows
-- on every claim and travels with each checkpoint write, so a store refuses the writes of an
-- owner whose claim was taken over (fencing).
CREATE TABLE projection_claims (
    projection   text        NOT NULL,
    partitions   integer     NOT NULL CHECK (partitions >= 1),
    partition    integer     NOT NULL CHECK (partition >= 0 AND partition < partitions),
    owner        text,
    token        bigint      NOT NULL DEFAULT 0,
    lease_until  timestamptz NOT NULL DEFAULT '-infinity',
    heartbeat_at timestamptz,
    claimed_at   timestamptz,
    PRIMARY KEY (projection, partitions, partition)
);

-- The projector processes alive now (renewed with their claims): each takes an even share.
CREATE TABLE projector_members (
    owner       text PRIMARY KEY,
    lease_until timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
