-- What upstream's database image grants on the objects the Supabase services create after it
-- ran (storage-api as supabase_storage_admin, GoTrue as supabase_auth_admin), and what else
-- of upstream's init scripts 0005 lacked. 0005 is recorded as applied on existing labs, so this
-- is a migration of its own. Idempotent: on a lab where the services already ran, it grants on
-- what they created as well. Upstream files are named repository:path on github.com/supabase;
-- "init-scripts/" is supabase/postgres:migrations/db/init-scripts/. Grants upstream also gives
-- postgres are left out: postgres is this lab's superuser.
-- depends: 0005_supabase

-- Storage -------------------------------------------------------------------------------------

-- Whatever supabase_storage_admin creates in storage is the API roles' to use, under RLS
-- (init-scripts/00000000000002-storage-schema.sql). storage-api logs in as
-- supabase_storage_admin and switches to the request's role, service_role for its own
-- bookkeeping (supabase/storage:src/internal/database/connection.ts, setScope); PostgREST
-- switches to it too. storage-api grants this itself only when told to install the roles
-- (supabase/storage:migrations/tenant/0002-storage-schema.sql, storage.install_roles), which
-- the profile leaves off. Without it every Storage request fails with 42501.
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_storage_admin IN SCHEMA storage
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_storage_admin IN SCHEMA storage
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_storage_admin IN SCHEMA storage
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;

-- The same on what storage-api created before this migration: on upstream's image the default
-- privileges above exist before storage-api's first migration, so every object in storage
-- carries them (init-scripts/00000000000002-storage-schema.sql).
GRANT ALL ON ALL TABLES IN SCHEMA storage TO anon, authenticated, service_role;
GRANT ALL ON ALL ROUTINES IN SCHEMA storage TO anon, authenticated, service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA storage TO anon, authenticated, service_role;

-- dashboard_user gets storage's schema, sequences and routines, not its tables
-- (init-scripts/00000000000003-post-setup.sql leaves the tables' grant commented out). Upstream
-- grants them on what exists when that script runs; the default privileges give the same on
-- what storage-api creates later, so a lab where Storage ran before this migration and one
-- where it runs after end up alike.
GRANT ALL ON SCHEMA storage TO dashboard_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA storage TO dashboard_user;
GRANT ALL ON ALL ROUTINES IN SCHEMA storage TO dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_storage_admin IN SCHEMA storage
    GRANT ALL ON SEQUENCES TO dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_storage_admin IN SCHEMA storage
    GRANT ALL ON FUNCTIONS TO dashboard_user;

-- Auth ----------------------------------------------------------------------------------------
-- The API roles get nothing more here: upstream gives them USAGE on auth, which 0005 grants, and
-- no table of it (init-scripts/00000000000001-auth-schema.sql); auth.uid() and its siblings
-- run through PUBLIC's EXECUTE.

-- dashboard_user gets all of auth (init-scripts/00000000000003-post-setup.sql), including what
-- supabase_auth_admin creates later (supabase/supabase:docker/volumes/db/init/
-- 20211115181400-update-auth-permissions.sql, the self-hosted copy of supabase/postgres's
-- migration of that name). Upstream's image creates auth's first tables itself, before GoTrue
-- runs; here GoTrue creates all of them, so without the defaults dashboard_user gets none.
GRANT ALL ON SCHEMA auth TO dashboard_user;
GRANT ALL ON ALL TABLES IN SCHEMA auth TO dashboard_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA auth TO dashboard_user;
GRANT ALL ON ALL ROUTINES IN SCHEMA auth TO dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth
    GRANT ALL ON TABLES TO dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth
    GRANT ALL ON SEQUENCES TO dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth
    GRANT ALL ON FUNCTIONS TO dashboard_user;

-- Database, extensions ------------------------------------------------------------------------

-- dashboard_user gets the database and the extensions schema with what is in it
-- (init-scripts/00000000000003-post-setup.sql). The services' owners may create schemas in the
-- database (init-scripts/00000000000002-storage-schema.sql for supabase_storage_admin,
-- supabase/postgres:migrations/db/migrations/20251121141100_supabase_auth_admin_db_grants.sql
-- for supabase_auth_admin). The database is named at run time: upstream's is "postgres".
DO $$
BEGIN
    EXECUTE format('GRANT ALL ON DATABASE %I TO dashboard_user', current_database());
    EXECUTE format(
        'GRANT CREATE ON DATABASE %I TO supabase_storage_admin, supabase_auth_admin',
        current_database()
    );
END
$$;
GRANT ALL ON SCHEMA extensions TO dashboard_user;
GRANT ALL ON ALL TABLES IN SCHEMA extensions TO dashboard_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA extensions TO dashboard_user;
GRANT ALL ON ALL ROUTINES IN SCHEMA extensions TO dashboard_user;

-- Realtime ------------------------------------------------------------------------------------

-- The API roles may use the realtime schema (init-scripts/00000000000003-realtime-schema.sql):
-- Realtime's authorization switches to the request's role and reads and writes
-- realtime.messages (supabase/realtime:lib/realtime/tenants/authorization.ex). Realtime grants
-- the table itself, but the pinned v2.34 grants the schema to authenticated only
-- (supabase/realtime:lib/realtime/tenants/repo/migrations/
-- 20211122062447_grant_realtime_usage_to_authenticated_role.ex), so anon's private channels
-- fail with 42501 without this.
GRANT USAGE ON SCHEMA realtime TO anon, authenticated, service_role;

-- Roles ---------------------------------------------------------------------------------------

-- The API roles inherit what is granted to them
-- (supabase/postgres:migrations/db/migrations/20230529180330_alter_api_roles_for_inherit.sql).
-- authenticator, which switches to them, stays NOINHERIT.
ALTER ROLE anon INHERIT;
ALTER ROLE authenticated INHERIT;
ALTER ROLE service_role INHERIT;

-- A PostgREST request waits at most 8 s for a lock, as its statements may run
-- (supabase/postgres:migrations/db/migrations/20231130133139_set_lock_timeout_to_authenticator_role.sql).
ALTER ROLE authenticator SET lock_timeout = '8s';

-- The platform's administrator, as which postgres-meta (and so Studio's SQL editor) and Realtime
-- log in, finds what is in auth and extensions (uuid-ossp) unqualified
-- (init-scripts/00000000000003-post-setup.sql).
ALTER ROLE supabase_admin SET search_path TO "$user", public, auth, extensions;
