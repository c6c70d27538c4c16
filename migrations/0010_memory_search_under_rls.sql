-- An agent's nearest memories under row-level security. The HNSW index yields hnsw.ef_search
-- (40) candidates from every tenant, then the policy keeps the tenant's: at the prod scale (50
-- agencies, 400 memories each) a search for the 5 nearest returned 0.6 rows on average, a wrong
-- answer, not the data. pgvector's iterative scan (0.8) goes on through the index until the
-- filtered result is complete (up to hnsw.max_scan_tuples), in distance order. Set for the
-- database, so every role a tenant works as (crm_app, Supabase's authenticated) gets it.
-- depends: 0009_indexes_under_rls

DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET hnsw.iterative_scan = strict_order', current_database());
END
$$;
