-- MLflow's metadata uses the default database (POSTGRES_DB=mlflow); its basic-auth users
-- and Prefect get their own.
CREATE DATABASE mlflow_auth;
CREATE DATABASE prefect;
