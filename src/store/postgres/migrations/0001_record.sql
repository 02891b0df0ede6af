-- onboard's record: one row per journal record, the per-hire lock's holder, evidence files and
-- hand-off receipts. Each journal row is the record's JSON text exactly as the file journal's
-- line (its hash covers that text), so the same chain and the same `onboard verify` hold.

CREATE TABLE onboard_journal (
    hire   text   NOT NULL,
    seq    bigint NOT NULL CHECK (seq >= 0),
    record text   NOT NULL,
    PRIMARY KEY (hire, seq)
);

-- Append-only: a record, once written, is never changed or removed by onboard, and a change
-- made around onboard (by someone who drops this trigger) breaks the chain.
CREATE FUNCTION onboard_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'onboard_journal is append-only';
END;
$$;

CREATE TRIGGER onboard_journal_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON onboard_journal
    FOR EACH STATEMENT EXECUTE FUNCTION onboard_journal_append_only();

-- Who holds a hire's lock (the lock itself is an advisory lock held by the run's connection).
CREATE TABLE onboard_lock_holder (
    hire   text        PRIMARY KEY,
    holder text        NOT NULL,
    since  timestamptz NOT NULL DEFAULT now()
);

-- Evidence files, content-addressed by SHA-256.
CREATE TABLE onboard_evidence (
    hire    text        NOT NULL,
    name    text        NOT NULL,
    sha256  text        NOT NULL,
    content bytea       NOT NULL,
    kept_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hire, sha256, name)
);

-- Hand-off receipts, as text and HTML.
CREATE TABLE onboard_receipt (
    hire text NOT NULL,
    step text NOT NULL,
    text text NOT NULL,
    html text NOT NULL,
    PRIMARY KEY (hire, step)
);
