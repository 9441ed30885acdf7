#!/usr/bin/env bash
# Builds the stand-in images the Compose stack needs where no container registry can be reached
# (`make images`): a Debian bookworm root made here with debootstrap and imported into the engine,
# then postgres, moto, Airflow and a Glue-like Spark image on top of it, with Debian packages and
# Python packages (and the S3A jars from Maven Central) only. docs/compose.md lists how each
# differs from the official image; docker/standin/ holds their Dockerfiles.
#
# Each image is tagged twice: by the hash of its inputs (Dockerfile folder, requirements.lock,
# build arguments, the hash of the image below it) and by the name docker-compose.yml takes from
# an image variable. An image whose input hash is already in the engine is not rebuilt, so an
# unchanged second run takes seconds. The last line of stdout is the environment that points
# the compose file at the stand-ins (`eval "$(tools/images.sh | tail -1)"`); `tools/images.sh env`
# prints only that line.
#
# TLS: the builds reach PyPI and Maven Central through the host's CA bundle, passed as the build
# secret `ca` (RUN --mount=type=secret,id=ca), so a proxy that re-signs TLS with a local CA works
# and no certificate is copied into an image or the repository. apt uses Debian's http mirror.
#
# Env: MUSICPIPE_ENGINE (podman or docker; default: podman if installed, else docker),
# MUSICPIPE_CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt), DEBIAN_MIRROR,
# MUSICPIPE_IMAGES_WORK (scratch folder; default a temporary one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
standin=$root/docker/standin
engine=${MUSICPIPE_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
ca=${MUSICPIPE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
repo=localhost/musicpipe
lock=$root/requirements.lock

pin() { sed -n "s/^$1==\\(.*\\)$/\\1/p" "$lock"; }
AIRFLOW_VERSION=$(pin apache-airflow)
MOTO_VERSION=$(pin moto)
# pyspark 3.5's Hadoop client and the AWS SDK v1 bundle hadoop-aws 3.3.4 was built against.
HADOOP_VERSION=3.3.4
AWS_SDK_VERSION=1.12.262

# What docker-compose.yml reads (image variables); `env` prints just this.
env_line() {
  printf 'export MUSICPIPE_POSTGRES_IMAGE=%s MUSICPIPE_MOTO_IMAGE=%s MUSICPIPE_AIRFLOW_BASE_IMAGE=%s MUSICPIPE_GLUE_BASE_IMAGE=%s\n' \
    "$repo/postgres:15-standin" "$repo/moto:$MOTO_VERSION-standin" \
    "$repo/airflow:$AIRFLOW_VERSION-standin" "$repo/glue:5-standin"
}
if [[ ${1:-} == env ]]; then env_line; exit 0; fi
exec 3>&1 1>&2

# Podman here needs its runtime settings (runc, ulimits): tools/podman-engine.sh writes them.
if [[ $engine == podman && -z ${CONTAINERS_CONF:-} ]]; then
  eval "$(bash "$root/tools/podman-engine.sh" conf)"
fi
[[ -r $ca ]] || { echo "images: no CA bundle at $ca (set MUSICPIPE_CA_BUNDLE)"; exit 2; }
have() { "$engine" image inspect "$1" >/dev/null 2>&1; }
hash_of() { # the inputs' hash: file contents (sorted by path) and extra strings
  { for f in "$@"; do if [[ -f $f ]]; then printf '%s\n' "${f##*/}"; cat "$f"; else printf '%s\n' "$f"; fi; done; } |
    sha256sum | cut -c1-16
}
work=${MUSICPIPE_IMAGES_WORK:-}
if [[ -z $work ]]; then work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
started=$SECONDS

# --- the Debian base: debootstrap, then import ----------------------------------------------
base_pkgs="ca-certificates"
base_hash=$(hash_of "base-v1 $suite $mirror $base_pkgs")
base=$repo/debian:$suite-$base_hash
if have "$base"; then
  echo "images: base $base (cached)"
else
  command -v debootstrap >/dev/null || {
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    else
      echo "images: debootstrap is needed (apt-get install debootstrap, as root)"; exit 2
    fi
  }
  echo "images: debootstrap $suite from $mirror (a few minutes)"
  rootfs=$work/rootfs
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$base_pkgs" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  security=${mirror%/debian}/debian-security
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$mirror" "$suite" "$mirror" "$suite" "$security" "$suite" >"$rootfs/etc/apt/sources.list"
  # As Docker's debian images: no apt caches, no recommends.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90musicpipe"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | "$engine" import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  echo "images: base $base imported ($((SECONDS - started)) s)"
fi

# --- the images on top of it -----------------------------------------------------------------
# build <name> <friendly tag> <extra context files…> -- <build args…>
build() {
  local name=$1 tag=$2; shift 2
  local files=() args=()
  while [[ $# -gt 0 && $1 != -- ]]; do files+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  args=("$@")
  local dir=$standin/$name
  local h
  h=$(hash_of "$base" "${args[@]}" "${files[@]}" $(find "$dir" -type f | sort))
  local hashed=$repo/$name:inputs-$h
  if have "$hashed"; then
    echo "images: $tag (cached, inputs $h)"
  else
    local t0=$SECONDS ctx=$work/ctx-$name
    rm -rf "$ctx" && cp -r "$dir" "$ctx"
    for f in "${files[@]}"; do cp "$f" "$ctx/"; done
    local bargs=(--build-arg "BASE_IMAGE=$base")
    for a in "${args[@]}"; do bargs+=(--build-arg "$a"); done
    echo "images: building $tag (inputs $h)"
    "$engine" build --secret "id=ca,src=$ca" "${bargs[@]}" --label "org.musicpipe.inputs=$h" \
      -t "$hashed" "$ctx" >"$work/build-$name.log" 2>&1 ||
      { tail -40 "$work/build-$name.log"; echo "images: $tag failed (log above)"; exit 1; }
    echo "images: $tag built in $((SECONDS - t0)) s"
  fi
  "$engine" tag "$hashed" "$tag"
  # Older input hashes of this image are untagged (their layers go with `image prune`).
  local old
  for old in $("$engine" images --format '{{.Repository}}:{{.Tag}}' "$repo/$name" | grep ':inputs-' | grep -vxF "$hashed"); do
    "$engine" rmi "$old" >/dev/null 2>&1 || true
  done
}

# extra-requirements.txt: what docker/airflow/Dockerfile adds, pre-installed so that its pip
# step is satisfied offline, plus the postgres drivers the official image carries (psycopg2 for
# the metadata database, asyncpg for its async engine).
{ cat "$root/docker/airflow/requirements.txt"; printf "%s\n" psycopg2-binary==2.9.10 asyncpg==0.30.0; } >"$work/extra-requirements.txt"

build postgres "$repo/postgres:15-standin"
build moto "$repo/moto:$MOTO_VERSION-standin" "$lock" -- "MOTO_VERSION=$MOTO_VERSION"
build airflow "$repo/airflow:$AIRFLOW_VERSION-standin" "$lock" "$work/extra-requirements.txt" -- \
  "AIRFLOW_VERSION=$AIRFLOW_VERSION"
build glue "$repo/glue:5-standin" "$lock" -- "HADOOP_VERSION=$HADOOP_VERSION" \
  "AWS_SDK_VERSION=$AWS_SDK_VERSION"

echo "images: done in $((SECONDS - started)) s (engine: $engine)"
env_line >&3
