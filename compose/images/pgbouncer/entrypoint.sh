#!/bin/sh
# The password arrives in the environment, never in an image or a rendered file:
# write the auth file PgBouncer reads, readable by its user only.
set -eu
umask 077
printf '"postgres" "%s"\n"crm_app" "%s"\n' "$POSTGRES_PASSWORD" "$CRM_APP_PASSWORD" \
  > /var/lib/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
