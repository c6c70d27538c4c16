-- The CSV import service's state: imports, the ledger of staged batches, staged rows, rejected
-- rows, and each imported lead's origin. Logged tables throughout: an unlogged staging table
-- is not replicated and comes back empty on a promoted replica, while its ledger would say the
-- batches were staged.
-- depends: 0006_supabase_grants

-- One import per agency and file content: the same file again is the same import.
CREATE TABLE app.imports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id   bigint NOT NULL REFERENCES agencies ON DELETE CASCADE,
    sha256      text NOT NULL,
    bytes       bigint NOT NULL,
    lines       bigint NOT NULL,  -- lines of the file, the header included: progress only
    state       text NOT NULL DEFAULT 'staging'
                CHECK (state IN ('staging', 'merging', 'done', 'failed')),
    rows_seen   bigint NOT NULL DEFAULT 0,
    imported    bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (agency_id, sha256)
);
CREATE INDEX ON app.imports (state) WHERE state IN ('staging', 'merging');

-- The ledger: a batch's row commits in the transaction that stages its rows.
CREATE TABLE app.import_batches (
    import_id    bigint NOT NULL REFERENCES app.imports ON DELETE CASCADE,
    batch        integer NOT NULL,
    first_line   bigint NOT NULL,
    last_line    bigint NOT NULL,
    rows         integer NOT NULL,
    rejected     integer NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, batch)
);

-- Rows that passed their own checks, until the merge moves them into leads.
CREATE TABLE app.import_rows (
    import_id   bigint NOT NULL REFERENCES app.imports ON DELETE CASCADE,
    line        bigint NOT NULL,
    full_name   text NOT NULL,
    phone       text,
    email       text,
    phone_key   text,
    email_key   text,
    status      text NOT NULL,
    source      text NOT NULL,
    score       smallint,
    created_at  timestamptz,
    PRIMARY KEY (import_id, line)
);

CREATE TABLE app.import_rejects (
    import_id   bigint NOT NULL REFERENCES app.imports ON DELETE CASCADE,
    line        bigint NOT NULL,
    reason      text NOT NULL,
    PRIMARY KEY (import_id, line)
);

-- Where an imported lead came from. The unique index is the database's own guard: a second
-- merge of one import fails on it rather than doubling the rows. No foreign key: a per-row
-- check would slow every import, and the merge writes only ids it holds locked.
ALTER TABLE leads ADD COLUMN import_id bigint, ADD COLUMN import_line bigint;
CREATE UNIQUE INDEX leads_import_line ON leads (import_id, import_line)
    WHERE import_id IS NOT NULL;

-- The service logs in as the application does.
GRANT USAGE ON SCHEMA app TO crm_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON app.imports, app.import_batches, app.import_rows, app.import_rejects TO crm_app;
