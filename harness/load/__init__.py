"""Locust load on the CRM: the plan, Locust as a child process, the run (alone or under a
scenario) and its report per window."""
