-- Search under row-level security. RLS applies the tenant filter first and keeps a
-- non-leakproof predicate such as ILIKE out of index conditions, so a name search by a
-- tenant role scanned the agency's whole index range (230 ms for the largest agency of
-- the prod scale, found by the load test). This function scopes to the session's agency
-- itself and runs as the owner, so the planner may use the trigram index.
-- Dashboards count an agency's messages over a date range; partitions are by month only.
-- depends: 0003_tenancy_and_audit

CREATE FUNCTION app.search_leads(term text, max_rows integer DEFAULT 20)
RETURNS TABLE (id bigint, full_name text, phone text, status text, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Planned per call with the values in place: a generic plan would AND in the agency's
    -- whole index range instead of filtering the few trigram matches (26 ms against 9 ms).
    RETURN QUERY EXECUTE format(
        'SELECT l.id, l.full_name, l.phone, l.status, l.created_at FROM leads l '
        'WHERE l.agency_id = %s AND l.full_name ILIKE %L ORDER BY l.created_at DESC LIMIT %s',
        coalesce(app.current_agency_id(), -1),
        '%' || replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_') || '%',
        max_rows);
END
$$;
REVOKE ALL ON FUNCTION app.search_leads(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.search_leads(text, integer) TO crm_app, authenticated;

CREATE INDEX ON messages (agency_id, created_at);
