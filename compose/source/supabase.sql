-- What a hosted Supabase project has that the CRM's migrations (0001-0006, applied first)
-- do not make: GoTrue's users and auth.uid(), Storage's tables, extensions in `extensions`.
-- A small stand-in of each, enough for the migration's traps (an RLS policy calling
-- auth.uid(), a foreign key to auth.users, Supabase's internals left behind).
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;  -- moves it, as hosted has it
ALTER EXTENSION pgcrypto SET SCHEMA extensions;

CREATE TABLE auth.users (
    instance_id        uuid,
    id                 uuid PRIMARY KEY,
    aud                varchar(255),
    role               varchar(255),
    email              varchar(255) UNIQUE,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    raw_app_meta_data  jsonb,
    raw_user_meta_data jsonb,
    created_at         timestamptz,
    updated_at         timestamptz
);
ALTER TABLE auth.users OWNER TO supabase_auth_admin;

-- As GoTrue defines it: the subject of the request's JWT.
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;

CREATE TABLE storage.buckets (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    owner      uuid,
    public     boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE storage.objects (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket_id  text REFERENCES storage.buckets (id),
    name       text,
    owner      uuid,
    metadata   jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
INSERT INTO storage.buckets (id, name) VALUES ('attachments', 'attachments');

-- One user per agency user of the seed, with fixed ids: the seed is deterministic.
INSERT INTO auth.users (id, aud, role, email, created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       'authenticated', 'authenticated', 'user' || i || '@example.test',
       '2024-12-01 00:00:00+00', '2024-12-01 00:00:00+00'
FROM generate_series(1, 25) AS i;
