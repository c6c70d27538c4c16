-- What the self-hosted Supabase services expect of their database (auth v2.177, rest v12.2,
-- realtime v2.34, storage v1.25, postgres-meta 0.91, studio): the roles they log in as and
-- switch to, their schemas, the realtime publication. Idempotent, so it also suits a
-- cluster that has some of it already. Passwords are set by `harness migrate` from .env.
-- depends: 0004_tenant_search

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        -- role, attributes
        ('anon', 'NOLOGIN NOINHERIT'),
        ('authenticated', 'NOLOGIN NOINHERIT'),
        ('service_role', 'NOLOGIN NOINHERIT BYPASSRLS'),
        -- PostgREST logs in as authenticator and switches to the JWT's role.
        ('authenticator', 'LOGIN NOINHERIT NOCREATEROLE'),
        -- Owners of the services' own schemas (GoTrue, Storage migrate them themselves).
        ('supabase_auth_admin', 'LOGIN NOINHERIT CREATEROLE'),
        ('supabase_storage_admin', 'LOGIN NOINHERIT CREATEROLE'),
        -- Realtime, postgres-meta and Studio: the platform's administrator, as upstream.
        ('supabase_admin', 'LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS'),
        ('dashboard_user', 'NOLOGIN CREATEDB CREATEROLE REPLICATION')
    ) AS roles(name, attributes) LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I %s', r.name, r.attributes);
        ELSE
            EXECUTE format('ALTER ROLE %I %s', r.name, r.attributes);
        END IF;
    END LOOP;
END
$$;

GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO supabase_storage_admin;

CREATE SCHEMA IF NOT EXISTS extensions;
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA IF NOT EXISTS storage AUTHORIZATION supabase_storage_admin;
CREATE SCHEMA IF NOT EXISTS realtime AUTHORIZATION supabase_admin;
CREATE SCHEMA IF NOT EXISTS _realtime AUTHORIZATION supabase_admin;
CREATE SCHEMA IF NOT EXISTS graphql_public;

CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;

ALTER ROLE supabase_auth_admin SET search_path = auth;
ALTER ROLE supabase_storage_admin SET search_path = storage;
ALTER ROLE authenticator SET statement_timeout = '8s';
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';

GRANT USAGE ON SCHEMA public, extensions, graphql_public, storage, app
    TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, dashboard_user;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO service_role;
GRANT ALL ON ALL ROUTINES IN SCHEMA public TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO authenticated;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO authenticated, service_role;

-- Realtime broadcasts changes of the tables added to this publication.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
        CREATE PUBLICATION supabase_realtime;
    END IF;
END
$$;
