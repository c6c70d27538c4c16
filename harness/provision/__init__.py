"""What `up` brings beyond the containers: the backup repository's stanza, the CRM schema,
and the optional profiles. It composes stack, backup, data and the profiles, so none of
them needs to know the others."""
