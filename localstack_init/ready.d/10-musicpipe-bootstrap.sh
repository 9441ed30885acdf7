#!/bin/bash
# LocalStack ready hook: create every resource of the musicpipe manifest, exactly as
# `musicpipe up` does on the embedded stack. Compose mounts the checkout at /opt/musicpipe and
# this folder at /etc/localstack/init/ready.d. A failure here leaves LocalStack unhealthy.
set -euo pipefail
SRC="${MUSICPIPE_SRC:-/opt/musicpipe/src}"
# LocalStack's own virtualenv has boto3; outside the container, the caller names a Python.
PY="${MUSICPIPE_HOOK_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x /opt/code/localstack/.venv/bin/python ]; then
    PY=/opt/code/localstack/.venv/bin/python
  else
    PY=python3
  fi
fi
ENDPOINT="${MUSICPIPE_HOOK_ENDPOINT:-http://localhost:4566}"
# The manifest reads musicpipe.toml from the checkout that holds src/.
cd "$(dirname "$SRC")"
PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m musicpipe.bootstrap --endpoint "$ENDPOINT"
