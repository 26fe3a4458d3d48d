-- One PostgreSQL role per kind of process, each with only what that kind does. Applied by
-- `orders migrate` after the numbered migrations, on every run: the grants are repeatable, so
-- a database restored without privileges (pg_dump --no-privileges, another cluster) gets
-- them back. Roles are cluster-wide and may exist already (another database of the cluster,
-- a concurrent run): each is created only when missing. They start without LOGIN; migrate
-- gives LOGIN and a password to each role whose password is configured (infra/migrate.py).
DO $$
DECLARE
    name text;
    member text[];
BEGIN
    FOREACH name IN ARRAY ARRAY['orders_reader', 'orders_writer', 'orders_projector',
                                'orders_rebuild'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE',
                               name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;
    -- The write API reads what the read API reads (`--role all` serves both from one pool);
    -- a rebuild may do what the projector does (the projector runs queued rebuilds too).
    -- The projector's stall guard names the session holding the snapshot horizon back, which
    -- needs other sessions' activity (pg_stat_activity shows it only to pg_read_all_stats).
    FOREACH member SLICE 1 IN ARRAY ARRAY[['orders_reader', 'orders_writer'],
                                          ['orders_projector', 'orders_rebuild'],
                                          ['pg_read_all_stats', 'orders_projector']] LOOP
        IF NOT pg_has_role(member[2], member[1], 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', member[1], member[2]);
            EXCEPTION WHEN unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- Nothing for anyone by default: each role gets exactly the grants below.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The read API (`--role read`): where each read model stands, and the log's positions
-- (not its payloads) to answer X-Min-Position and lag; it may queue a rebuild (admin token).
GRANT SELECT (position, transaction_id, recorded_at, stream_hash) ON events TO orders_reader;
GRANT SELECT ON projection_checkpoints, projection_status, dead_letters, log_identity,
    reindex_jobs, projection_claims TO orders_reader;
GRANT INSERT (id, target, state, keep_old) ON reindex_jobs TO orders_reader;

-- The write API: append to the log, change the write model, record idempotency keys. It
-- cannot change or delete an event, nor touch a checkpoint.
GRANT SELECT, INSERT ON events, idempotency_keys TO orders_writer;
GRANT SELECT, INSERT, UPDATE ON orders, order_lines TO orders_writer;
GRANT USAGE ON SEQUENCE events_position_seq TO orders_writer;

-- The projector: read the log, write checkpoints, status and dead letters, run queued
-- rebuilds. It cannot append an event nor read or change the write model.
GRANT SELECT ON events, log_identity TO orders_projector;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints TO orders_projector;
GRANT SELECT, INSERT, UPDATE ON projection_status, dead_letters, reindex_jobs
    TO orders_projector;
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO orders_projector;
-- Partition claims and the live members that share them (leases, fencing tokens).
GRANT SELECT, INSERT, UPDATE ON projection_claims TO orders_projector;
GRANT SELECT, INSERT, UPDATE, DELETE ON projector_members TO orders_projector;

-- Rebuild jobs (`orders reindex`): what the projector may do (membership, above).
