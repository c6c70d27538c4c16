"""Chaos: the workload a scenario runs under, the invariants checked afterwards, the runner
that always heals, the catalog of scenarios, and their reports."""
