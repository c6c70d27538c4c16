-- Indexes the CRM mix's statements need under row-level security, read from their plans at the
-- prod scale (`make bench-plans`). The policy adds agency_id = app.current_agency_id() to every
-- statement a tenant runs, so each index leads with agency_id.
-- depends: 0007_statement_statistics

-- The dashboard's count of an agency's leads over 30 days: the index on (agency_id, status,
-- created_at) served it only by walking every status of the agency, discarding ~85k entries a
-- call, and the planner added parallel workers to it.
CREATE INDEX leads_agency_id_created_at_idx ON leads (agency_id, created_at);

-- An incoming call: the agency's client with this phone. Without it the phone is matched by the
-- trigram index or among all of the agency's clients.
CREATE INDEX clients_agency_id_phone_idx ON clients (agency_id, phone);
