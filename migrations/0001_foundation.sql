-- Extensions, the tenant-resolution function, and the application roles.
-- depends:

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE SCHEMA IF NOT EXISTS app;

-- The tenant of the current session: a plain session setting (app.agency_id) for the
-- CRM's own services, or Supabase-style JWT claims (request.jwt.claims ->> 'agency_id')
-- as PostgREST sets them. NULL (no tenant) matches no row.
CREATE FUNCTION app.current_agency_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        nullif(current_setting('app.agency_id', true), '')::bigint,
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'agency_id')::bigint
    )
$$;

CREATE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Application roles: never superuser, never BYPASSRLS. crm_app is given a login and a
-- generated password by `harness migrate`; `authenticated` is Supabase's role for users.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crm_app') THEN
        CREATE ROLE crm_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA app TO crm_app, authenticated;
