#!/bin/sh
# MinIO: the two buckets, and one user per client with read/write on its own bucket only
# (the root keys stay with MinIO and this job). Idempotent: rerun it after changing a key.
#   MLFLOW_S3_ACCESS_KEY    -> regionops-mlflow  (the MLflow server's artifact proxy)
#   PIPELINE_S3_ACCESS_KEY  -> regionops-dvc     (flow runs and training jobs: the DVC remote)
set -eu
here=$(dirname "$0")
mc alias set store "${MINIO_URL:-http://minio:9000}" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing store/regionops-mlflow store/regionops-dvc
mc admin policy create store regionops-mlflow-rw "$here/mlflow-policy.json"
mc admin policy create store regionops-dvc-rw "$here/dvc-policy.json"
mc admin user add store "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
mc admin user add store "$PIPELINE_S3_ACCESS_KEY" "$PIPELINE_S3_SECRET_KEY"
# attach fails when the policy is attached already: then check that it is
attach() {
  mc admin policy attach store "$1" --user "$2" || mc admin user info store "$2" | grep -q "$1"
}
attach regionops-mlflow-rw "$MLFLOW_S3_ACCESS_KEY"
attach regionops-dvc-rw "$PIPELINE_S3_ACCESS_KEY"
