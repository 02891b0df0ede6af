-- Who holds a hire's lock, so that a refusal names the live holder and never a run that has
-- exited: the server process holding the lock (compared with pg_locks), and the onboard process
-- (host and pid) and run behind it. The row is deleted when the lock is released.
ALTER TABLE onboard_lock_holder
    ADD COLUMN backend_pid integer NOT NULL DEFAULT 0,
    ADD COLUMN host        text    NOT NULL DEFAULT '',
    ADD COLUMN pid         bigint  NOT NULL DEFAULT 0,
    ADD COLUMN run         text    NOT NULL DEFAULT '';

-- When the server wrote each record, by its own clock: how long ago a run that lost its lock
-- announced an effect it may still be carrying out.
ALTER TABLE onboard_journal
    ADD COLUMN written_at timestamptz NOT NULL DEFAULT now();
