#!/bin/sh
# Refuse to start with a placeholder secret. Every secret infra/.env.example ships starts with
# "change-me"; this runs before each service (compose: the secrets-check service; Kubernetes:
# an init container given the same Secrets as its pod) and names the variable, never the value.
set -eu
bad=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=change-me.*$/\1/p' | sort -u)
if [ -n "$bad" ]; then
  for name in $bad; do
    echo "refusing to start: $name is still the placeholder value from infra/.env.example; set a real secret (infra/README.md, Secrets)" >&2
  done
  exit 1
fi
echo "check-secrets: no placeholder values"
