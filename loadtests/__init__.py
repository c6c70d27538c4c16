"""Load against the lab: the CRM workload mix (locust-free) and the Locust user that runs it."""
