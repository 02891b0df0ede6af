-- Published policy texts: a (file, version) names one text for good, so the first publication
-- wins and a different text under the same version is refused by onboard.

CREATE TABLE onboard_policy (
    file    text        NOT NULL,
    version text        NOT NULL,
    sha256  text        NOT NULL,
    text    text        NOT NULL,
    kept_at text        NOT NULL,
    PRIMARY KEY (file, version)
);

CREATE FUNCTION onboard_policy_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'onboard_policy is append-only';
END;
$$;

CREATE TRIGGER onboard_policy_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON onboard_policy
    FOR EACH STATEMENT EXECUTE FUNCTION onboard_policy_append_only();
