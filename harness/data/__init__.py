"""The CRM's data: the schema (migrations), deterministic rows, seeding with COPY, and the
per-node verification that every node holds the same rows."""
