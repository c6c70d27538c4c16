"""Backups with pgBackRest, restores into a fresh cluster, and the timed restore drill.

pgBackRest runs inside the database nodes (Debian's package, in the image): the leader
archives every WAL segment into the repository on the `backups` volume, and backups are
taken on the leader, so both follow the leader through a failover."""
