-- An agent's nearest memories, exactly, from the tenant's own rows. With the iterative scan
-- (0010) the HNSW index gives the right answer but walks past every other tenant's memories to
-- find it: ~1,000 candidates for 5 rows at the prod scale (13 ms alone, 60 ms mean under load,
-- the slowest request of the mix). A tenant holds a few hundred memories, so the policy's
-- agency_id through this index and an exact top-5 sort is both cheaper and exact; the planner
-- still takes the HNSW index where a tenant's rows are many.
-- depends: 0010_memory_search_under_rls

CREATE INDEX agent_memory_agency_id_idx ON agent_memory (agency_id);
