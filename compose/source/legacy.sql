-- The CRM as it is on hosted Supabase, before the clean schema: the seeded tables under their
-- legacy names, and the traps real migrations hit, each on purpose:
--   leads_ins_info, leads_contact_info   legacy names the rename map carries to leads, clients
--   lead_imports                          no primary key (needs a replica identity), an
--                                         identity column, a stored generated column, a foreign
--                                         key to auth.users, RLS with a policy on auth.uid()
--   messages (from 0002)                  partitioned: needs publish_via_partition_root
--   every table with updated_at (0002)    an updated_at trigger
--   every id (0002)                       identity sequences, which replication does not carry
ALTER TABLE leads RENAME TO leads_ins_info;
ALTER TABLE clients RENAME TO leads_contact_info;

CREATE TABLE lead_imports (
    line          bigint GENERATED ALWAYS AS IDENTITY,
    lead_id       bigint NOT NULL,
    owner_id      uuid REFERENCES auth.users (id),
    raw_phone     text NOT NULL,
    phone_digits  text GENERATED ALWAYS AS (regexp_replace(raw_phone, '[^0-9]', '', 'g')) STORED,
    imported_at   timestamptz NOT NULL
);
ALTER TABLE lead_imports ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_imports ON lead_imports FOR ALL TO authenticated
    USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON lead_imports TO crm_app, authenticated, service_role;

-- Deterministic: every fifth lead of the seed, imported by one of the users.
INSERT INTO lead_imports (lead_id, owner_id, raw_phone, imported_at)
SELECT l.id,
       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + l.id % 25), 12, '0'))::uuid,
       coalesce(l.phone, '+7 900 000-00-00'),
       l.created_at
FROM leads_ins_info l WHERE l.id % 5 = 0 ORDER BY l.id;

-- The app writes here; Realtime's publication carries the leads (hosted projects add tables).
ALTER PUBLICATION supabase_realtime ADD TABLE leads_ins_info;
