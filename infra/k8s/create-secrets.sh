#!/usr/bin/env bash
# Create (or update) the Secrets of the regionops namespace from infra/.env, one per client and
# scope, so that no pod sees a key it does not use (tests/platform/test_infra_static.py checks that the
# manifests reference exactly these). Refuses "change-me" placeholders before touching the cluster.
#   infra/k8s/create-secrets.sh [infra/.env]
set -euo pipefail
ENV_FILE=${1:-infra/.env}
NAMESPACE=${NAMESPACE:-regionops}

# Secret name, then KEY=VARIABLE pairs: the key the pods read, the variable of infra/.env it holds.
SECRETS='
postgres-admin POSTGRES_USER=POSTGRES_USER POSTGRES_PASSWORD=POSTGRES_PASSWORD
mlflow-db MLFLOW_DB_PASSWORD=MLFLOW_DB_PASSWORD
prefect-db PREFECT_DB_PASSWORD=PREFECT_DB_PASSWORD
registry-lock-db PGPASSWORD=REGIONOPS_LOCK_DB_PASSWORD
minio-root MINIO_ROOT_USER=MINIO_ROOT_USER MINIO_ROOT_PASSWORD=MINIO_ROOT_PASSWORD
mlflow-s3 AWS_ACCESS_KEY_ID=MLFLOW_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=MLFLOW_S3_SECRET_KEY
pipeline-s3 AWS_ACCESS_KEY_ID=PIPELINE_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=PIPELINE_S3_SECRET_KEY
mlflow-admin MLFLOW_AUTH_ADMIN_USERNAME=MLFLOW_AUTH_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD=MLFLOW_AUTH_ADMIN_PASSWORD
mlflow-flask MLFLOW_FLASK_SERVER_SECRET_KEY=MLFLOW_FLASK_SERVER_SECRET_KEY
mlflow-pipeline-login MLFLOW_TRACKING_USERNAME=PIPELINE_MLFLOW_USERNAME MLFLOW_TRACKING_PASSWORD=PIPELINE_MLFLOW_PASSWORD
prefect-auth PREFECT_API_AUTH_STRING=PREFECT_API_AUTH_STRING
'

[ -f "$ENV_FILE" ] || { echo "create-secrets: no $ENV_FILE (copy infra/.env.example and change every secret)" >&2; exit 1; }
declare -A value
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in ''|'#'*) continue ;; esac
  value["${line%%=*}"]="${line#*=}"
done < "$ENV_FILE"

failed=0
while read -r name pairs; do
  [ -n "$name" ] || continue
  for pair in $pairs; do
    variable=${pair#*=}
    if [ -z "${value[$variable]:-}" ]; then
      echo "create-secrets: $variable is not set in $ENV_FILE (Secret $name)" >&2; failed=1
    elif [ "${value[$variable]#change-me}" != "${value[$variable]}" ]; then
      echo "create-secrets: $variable is still the placeholder from infra/.env.example (Secret $name)" >&2; failed=1
    fi
  done
done <<< "$SECRETS"
[ "$failed" -eq 0 ] || exit 1

while read -r name pairs; do
  [ -n "$name" ] || continue
  literals=()
  for pair in $pairs; do
    literals+=("--from-literal=${pair%%=*}=${value[${pair#*=}]}")
  done
  kubectl -n "$NAMESPACE" create secret generic "$name" "${literals[@]}" --dry-run=client -o yaml < /dev/null \
    | kubectl apply -f -
done <<< "$SECRETS"
