-- Indexes the CRM mix's statements need under row-level security, read from their plans at the
-- prod scale (`make bench-plans`, as crm_app for the agency with the most leads). The policy adds
-- agency_id = app.current_agency_id() to every statement a tenant runs, so each index leads
-- with agency_id.
-- depends: 0008_statement_statistics

-- The dashboard's count of an agency's leads over 30 days: through the index on (agency_id,
-- status, created_at) it was a bitmap scan of every status' range, then 5,375 heap pages read
-- (38 ms of the dashboard's 49 ms). With this index (and a vacuumed table) it is an index-only
-- scan of 22 pages (0.6 ms).
CREATE INDEX leads_agency_id_created_at_idx ON leads (agency_id, created_at);

-- An incoming call: the agency's client with this phone. It was matched through the trigram
-- index on phone (2.7 ms); this index finds it in 0.07 ms.
CREATE INDEX clients_agency_id_phone_idx ON clients (agency_id, phone);
