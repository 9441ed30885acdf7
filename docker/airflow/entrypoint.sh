#!/usr/bin/env bash
# The Airflow containers' entrypoint: the AWS connection and the DAG's Variable for the endpoints
# inside the Compose network, computed by musicpipe from the checkout's manifest (the same code
# that configures the embedded stack), the secrets every Airflow component shares (Fernet key, API
# secret key, JWT secret: read from $MUSICPIPE_AIRFLOW_SECRETS, generated there by the first
# container that starts), and the UI login; then the image's own entrypoint.
set -euo pipefail
root="${MUSICPIPE_ROOT:-/opt/musicpipe}"
exports="$(cd "$root" && PYTHONPATH="$root/src" python -m musicpipe.stack.compose airflow-env)"
eval "$exports"
python -c 'import json, os, sys; json.dump({"admin": os.environ["MUSICPIPE_AIRFLOW_PASSWORD"]}, open(sys.argv[1], "w"))' \
  "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
exec "${AIRFLOW_IMAGE_ENTRYPOINT:-/entrypoint}" "$@"
