-- pg_stat_statements' view, so a load report can say which statements the time went to. The
-- library is preloaded by the rendered configuration (harness.config.render); the view lives
-- in the database the CRM runs in, and replicas get it with the catalog.
-- depends: 0007_csv_import

CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
