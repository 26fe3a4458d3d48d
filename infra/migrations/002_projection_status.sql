-- What each running projection reports about itself, for `orders status` and /admin/projections.
CREATE TABLE projection_status (
    name        text PRIMARY KEY,
    state       text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    owner       text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
