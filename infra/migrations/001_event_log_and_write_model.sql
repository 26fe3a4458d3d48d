-- The append-only event log: the only source of truth.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id: readers order by (transaction_id, position) and read
    -- only below the oldest running transaction, so an out-of-order commit is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       uuid        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    type            text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, version)
);
CREATE INDEX events_transaction_order ON events (transaction_id, position);

-- The normalized write model, changed in the same transaction as the log.
CREATE TABLE orders (
    order_id        uuid PRIMARY KEY,
    customer_id     text          NOT NULL,
    customer_name   text,
    status          text          NOT NULL CHECK (status IN ('placed', 'cancelled', 'shipped')),
    total           numeric(14,2) NOT NULL,
    item_count      integer       NOT NULL,
    version         integer       NOT NULL,
    placed_at       timestamptz   NOT NULL,
    cancelled_at    timestamptz,
    cancel_reason   text,
    shipped_at      timestamptz,
    tracking_number text,
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id, placed_at DESC);

CREATE TABLE order_lines (
    order_id   uuid          NOT NULL REFERENCES orders (order_id),
    line_no    integer       NOT NULL,
    sku        text          NOT NULL,
    name       text          NOT NULL,
    quantity   integer       NOT NULL CHECK (quantity >= 1),
    unit_price numeric(14,2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- A replayed request with the same key returns the stored response and appends nothing.
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY,
    request_hash    text        NOT NULL,
    response_status integer     NOT NULL,
    response_body   jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Where each projection stands in the log, as the (transaction_id, position) pair.
CREATE TABLE projection_checkpoints (
    name           text PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Events a sink rejected for their content; the projection stops (or skips, if configured).
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    error       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, position)
);
