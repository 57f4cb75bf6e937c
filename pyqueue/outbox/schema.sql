-- pyqueue transactional outbox: the table, its indexes and the NOTIFY trigger.
--
-- `pyqueue outbox init --dsn DSN` runs this file (idempotent: run it again at
-- every deploy if you like). Teams that run their own migrations can paste it
-- into one. Objects are created in the first schema of the search_path.
--
-- A row is written by pyqueue.outbox.enqueue() inside the application's own
-- transaction; the relay (`pyqueue outbox relay`) adds it to Redis as job
-- "outbox-<id>" and sets published_at in one PostgreSQL transaction.
--
--   id            order of the rows, and the job id ("outbox-<id>")
--   queue, name   the queue and the job's name
--   data, opts    the job's data and its options (snake_case, seconds, as add() takes them)
--   created_at    when the row was written (a delay counts from here)
--   published_at  when the relay added the job (NULL: not yet)
--   attempts      how many times a relay tried to publish the row and failed
--   last_error    the last failure (Redis down, or why the row is invalid)
--   failed_at     set when the row can never become a job (its queue name or
--                 options are invalid); the relay skips it until this is NULL again

CREATE TABLE IF NOT EXISTS pyqueue_outbox (
    id           bigserial PRIMARY KEY,
    queue        text        NOT NULL,
    name         text        NOT NULL,
    data         jsonb       NOT NULL DEFAULT 'null'::jsonb,
    opts         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    failed_at    timestamptz
);

-- The relay's work list: unpublished rows in id order (small: published rows leave it).
CREATE INDEX IF NOT EXISTS pyqueue_outbox_pending
    ON pyqueue_outbox (id) WHERE published_at IS NULL AND failed_at IS NULL;

-- Retention: published rows by age.
CREATE INDEX IF NOT EXISTS pyqueue_outbox_published
    ON pyqueue_outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relays when rows commit (NOTIFY is delivered at COMMIT, never for
-- a rolled-back transaction). Any INSERT notifies, also one that does not go
-- through pyqueue (raw SQL, an ORM): the relays poll as well, so a missed
-- notification only delays a row by the poll interval.
CREATE OR REPLACE FUNCTION pyqueue_outbox_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pyqueue_outbox', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS pyqueue_outbox_notify ON pyqueue_outbox;
CREATE TRIGGER pyqueue_outbox_notify
    AFTER INSERT ON pyqueue_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pyqueue_outbox_notify();
