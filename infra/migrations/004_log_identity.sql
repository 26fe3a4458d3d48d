-- Which log a checkpoint describes. A read model's checkpoint is only meaningful against the
-- log it was taken from: `cluster` is the PostgreSQL cluster the log lives on, `epoch` changes
-- when the log is created anew or rebased onto another cluster (see `orders migrate`).
CREATE TABLE log_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cluster   text        NOT NULL,
    epoch     uuid        NOT NULL,
    since     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO log_identity (cluster, epoch)
SELECT system_identifier::text, gen_random_uuid() FROM pg_control_system();

-- Each checkpoint names the log identity (`cluster/epoch`) it was taken against.
ALTER TABLE projection_checkpoints ADD COLUMN log_identity text NOT NULL DEFAULT '';
