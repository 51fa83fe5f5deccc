#!/usr/bin/env bash
# Gives each aTES service a PostgreSQL role of its own, `ates_<schema>`, that owns its schema
# and nothing else: it may log in and connect to the database, creates its own tables there
# (each service migrates its schema at start, and creates the schema only when it is missing,
# which it is not), and may not read another service's schema, create schemas, databases or
# roles. Nobody else may connect: PUBLIC loses its default privileges on the database.
#
# The postgres image runs this once, as the superuser ($POSTGRES_USER) against $POSTGRES_DB,
# when it initialises an empty data directory (files in /docker-entrypoint-initdb.d/). Each
# role's password comes from the environment: ATES_PG_AUTH_PASSWORD, ATES_PG_TASK_TRACKER_PASSWORD,
# ATES_PG_ACCOUNTING_PASSWORD, ATES_PG_ANALYTICS_PASSWORD. Running it again is safe: it
# creates what is missing and resets the passwords. psql reads them with \getenv (psql 15 and
# later), so they appear neither in a command line nor in the script psql runs.
#
# The same as `Credentials::provision_roles` (ates/src/credentials.rs) does for `ates dev`.
# The image either sources this (not executable) or runs it: it works both ways.
set -Eeo pipefail

ates_provision_roles() {
	local schema variable
	for schema in auth task_tracker accounting analytics; do
		variable="ATES_PG_${schema^^}_PASSWORD"
		if [ -z "${!variable:-}" ]; then
			echo "10-ates-roles.sh: $variable is not set: the password of the role ates_$schema" >&2
			return 1
		fi
	done
	{
		echo 'SET client_min_messages = warning;'
		for schema in auth task_tracker accounting analytics; do
			cat <<-SQL
				\\getenv password ATES_PG_${schema^^}_PASSWORD
				\\set role ates_${schema}
				\\set schema ${schema}
				SELECT format('CREATE ROLE %I', :'role')
				    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
				ALTER ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
				    PASSWORD :'password';
				\\unset password
				GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
				CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"role";
				ALTER SCHEMA :"schema" OWNER TO :"role";
			SQL
		done
		# A new database lets PUBLIC connect and create temporary tables: now only the roles
		# granted CONNECT above (and the superuser) may connect.
		echo 'REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;'
	} | psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet \
		--username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
}

ates_provision_roles
