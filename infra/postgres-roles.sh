#!/bin/sh
# One login role per client, each owning (or reaching) only its own database. The postgres
# image runs this once, at first start, after postgres-init.sql (docker-entrypoint-initdb.d);
# the passwords come from the environment, the superuser stays with PostgreSQL alone.
#   mlflow          owns mlflow + mlflow_auth  (the MLflow server)
#   prefect         owns prefect               (the Prefect server)
#   regionops_lock  may connect to regionops_locks, where it takes advisory locks only
#                   (REGIONOPS_REGISTRY_LOCK_URL: flow runs serialise promotions on it)
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v mlflow_pw="$MLFLOW_DB_PASSWORD" -v prefect_pw="$PREFECT_DB_PASSWORD" \
  -v lock_pw="$REGIONOPS_LOCK_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_pw';
CREATE ROLE regionops_lock LOGIN PASSWORD :'lock_pw';
ALTER DATABASE mlflow OWNER TO mlflow;
ALTER DATABASE mlflow_auth OWNER TO mlflow;
ALTER DATABASE prefect OWNER TO prefect;
REVOKE ALL ON DATABASE mlflow, mlflow_auth, prefect, regionops_locks FROM PUBLIC;
GRANT CONNECT ON DATABASE regionops_locks TO regionops_lock;
\connect prefect
-- Prefect's migrations want pg_trgm; created here so its role needs no superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
