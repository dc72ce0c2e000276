-- MLflow uses the default database; Prefect gets its own.
CREATE DATABASE prefect;
