-- Rebuilds of a read model from the log: progress, and where to resume after a crash.
CREATE TABLE reindex_jobs (
    id             uuid PRIMARY KEY,
    target         text        NOT NULL CHECK (target IN ('search', 'dashboard')),
    state          text        NOT NULL,
    new_target     text,
    old_target     text,
    start_tx       xid8,
    start_position bigint,
    resume_after   uuid,
    events_total   bigint,
    events_read    bigint      NOT NULL DEFAULT 0,
    docs_written   bigint      NOT NULL DEFAULT 0,
    keep_old       boolean     NOT NULL DEFAULT false,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
-- At most one unfinished rebuild per read model.
CREATE UNIQUE INDEX reindex_jobs_one_active ON reindex_jobs (target)
    WHERE state IN ('queued', 'loading', 'catching_up', 'swapping');
