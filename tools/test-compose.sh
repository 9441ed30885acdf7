#!/usr/bin/env bash
# `make test-compose`: the Compose stack started for real and held to the oracle, from nothing
# on a Linux machine (tests/stack/test_compose_live.py).
#   1. An engine: the Docker engine (or DOCKER_HOST) that answers; where none does, Podman's
#      Docker API started by tools/podman-engine.sh (Podman, runc, the docker CLI installed with
#      apt-get where missing and we are root; Compose v2 from tools/compose-lint-env.sh), with
#      its health-check timer (Podman without systemd runs no health checks by itself).
#   2. Images: with the engine started here (no registry assumed), the stand-ins of
#      tools/images.sh (cached by input hash); with an engine that was already there, the
#      official images. MUSICPIPE_COMPOSE_IMAGES=standin|official overrides.
#   3. The live test, the moto variant unless MUSICPIPE_COMPOSE_AWS says otherwise.
#   4. A clean stop of what this script started (the engine's PIDs, its containers), also on
#      failure or Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=${PYTHON_BIN:-$root/.venv/bin/python}
started=$SECONDS

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
ours=""
if command -v docker >/dev/null && answers; then
  echo "test-compose: using the engine that answers ($(docker version --format '{{.Server.Platform.Name}} {{.Server.Version}}'))"
elif [[ $(uname -s) != Linux ]] || { [[ $(id -u) != 0 ]] && ! command -v podman >/dev/null; }; then
  # Podman is installed and started here only on Linux, as root or where it already is; on
  # a Mac, start Docker Desktop or `podman machine` and run this again.
  echo "test-compose: skipped: no Docker engine answers, and Podman cannot be started here" \
    "($(uname -s), $([[ $(id -u) == 0 ]] && echo root || echo 'not root, no podman'))"
  exit 0
else
  echo "test-compose: no engine answers; starting Podman's (tools/podman-engine.sh)"
  trap 'bash "$root/tools/podman-engine.sh" stop' EXIT
  trap 'exit 130' INT TERM
  eval "$(bash "$root/tools/podman-engine.sh" start)"
  ours=1
fi

images=${MUSICPIPE_COMPOSE_IMAGES:-$([[ -n $ours ]] && echo standin || echo official)}
if [[ $images == standin ]]; then
  t0=$SECONDS
  # A failed build must stop here: an empty line would leave compose pulling the official
  # images from a registry this machine cannot reach, and hide the build's own error.
  if ! line=$(bash "$root/tools/images.sh" | tail -1) || [[ $line != export\ * ]]; then
    echo "test-compose: the stand-in images were not built (tools/images.sh said why, above)"
    exit 1
  fi
  eval "$line"
  echo "test-compose: stand-in images ready in $((SECONDS - t0)) s"
fi

export MUSICPIPE_COMPOSE_AWS=${MUSICPIPE_COMPOSE_AWS:-moto}
export MUSICPIPE_COMPOSE_LIVE=required
t0=$SECONDS
"$py" -m pytest tests/stack/test_compose_live.py -s -rs -p no:cacheprovider ${PYTEST_ARGS:-}
echo "test-compose: live test $((SECONDS - t0)) s; all $((SECONDS - started)) s"
