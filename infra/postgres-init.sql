-- MLflow's metadata uses the default database (POSTGRES_DB=mlflow); its basic-auth users,
-- Prefect and the registry lock (REGIONOPS_REGISTRY_LOCK_URL: advisory locks only) get their own.
-- The roles that own them, with their passwords, are made by postgres-roles.sh.
CREATE DATABASE mlflow_auth;
CREATE DATABASE prefect;
CREATE DATABASE regionops_locks;
