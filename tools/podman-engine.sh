#!/usr/bin/env bash
# A Docker-compatible engine for the Compose stack where no Docker engine runs: Podman's Docker
# API on a unix socket of our own, driven by Docker's CLI with Compose v2 as its plugin.
#   eval "$(tools/podman-engine.sh start)"   # installs what is missing (apt, as root), starts
#                                            # the service and the health-check timer, prints
#                                            # the exports (DOCKER_HOST…) as its stdout
#   tools/podman-engine.sh stop              # removes the containers it ran, stops both
#   tools/podman-engine.sh conf              # only writes and exports the Podman settings
# Everything lives in $MUSICPIPE_ENGINE_DIR (default <checkout>/.musicpipe/engine): the socket,
# the PIDs, the logs, containers.conf, the docker CLI config with the compose plugin. Only
# processes this script started (by the PIDs it recorded) are ever stopped.
#
# Why the settings: Debian 12's Podman 4.3 defaults to crun, which fails on hosts with hybrid
# cgroups (v1 controllers + a v2 mount), so the runtime is runc; the default open-files limit
# inside containers is raised (nofile 20000) for Airflow and Spark; Podman's Docker API and
# Compose take DOCKER_BUILDKIT=0 (the legacy builder endpoint is the one Podman implements); the
# network backend is netavark with aardvark-dns, the one whose networks resolve container names
# (a machine that once used the CNI plugins would otherwise stay on them, without DNS).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${MUSICPIPE_ENGINE_DIR:-$root/.musicpipe/engine}
sock=$dir/podman.sock
conf=$dir/containers.conf
# How often the health-check timer looks (each check runs once per its own interval).
tick=${MUSICPIPE_HEALTHCHECK_TICK:-2}
exec 3>&1 1>&2 # stdout is for the exports only

as_root_apt() { # apt-get install <pkgs>, where we may
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "podman-engine: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$dir/apt.log" 2>&1 ||
      { apt-get update -q >>"$dir/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$dir/apt.log" 2>&1; } ||
      { tail -20 "$dir/apt.log"; exit 1; }
  else
    echo "podman-engine: missing $* (install them: sudo apt-get install $*)"
    exit 2
  fi
}

write_conf() {
  mkdir -p "$dir"
  cat >"$conf" <<'CONF'
# Written by tools/podman-engine.sh (see there why).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
}

exports() {
  printf 'export CONTAINERS_CONF=%q DOCKER_HOST=%q DOCKER_CONFIG=%q DOCKER_BUILDKIT=0\n' \
    "$conf" "unix://$sock" "$dir/docker-config"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  mkdir -p "$dir"
  local need=()
  command -v podman >/dev/null || need+=(podman)
  command -v runc >/dev/null || need+=(runc)
  command -v docker >/dev/null || need+=(docker.io) # Docker's CLI only; dockerd is not started
  # Container names resolve (compose services reach each other by name) only with a DNS
  # server on the network: aardvark-dns under netavark. Installed without recommends, Podman
  # gets the CNI plugins instead, whose networks have no DNS ("dns_enabled": false).
  [[ -x /usr/lib/podman/netavark ]] || need+=(netavark)
  [[ -x /usr/lib/podman/aardvark-dns ]] || need+=(aardvark-dns)
  # netavark sets up each network's NAT with iptables, which it does not depend on: without it
  # every build step and container with a network fails with "netavark: No such file or
  # directory".
  command -v iptables >/dev/null || need+=(iptables)
  [[ ${#need[@]} -eq 0 ]] || as_root_apt "${need[@]}"
  write_conf
  export CONTAINERS_CONF=$conf
  # Compose v2 as the docker CLI's plugin: the binary tools/compose-lint-env.sh unpacks. Podman
  # reads DOCKER_CONFIG's config.json for registry logins: an empty one.
  mkdir -p "$dir/docker-config"
  [[ -f $dir/docker-config/config.json ]] || echo '{}' >"$dir/docker-config/config.json"
  if ! DOCKER_CONFIG=$dir/docker-config docker compose version >/dev/null 2>&1; then
    local bin
    bin=$(bash "$root/tools/compose-lint-env.sh" | tail -1)
    mkdir -p "$dir/docker-config/cli-plugins"
    ln -sf "$bin/compose-v2" "$dir/docker-config/cli-plugins/docker-compose"
  fi
  if ! alive "$dir/service.pid"; then
    rm -f "$sock"
    # Its own session and process group, so stop ends it and nothing else.
    setsid podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 </dev/null 3>&- &
    echo $! >"$dir/service.pid"
  fi
  local i
  for i in $(seq 60); do
    DOCKER_HOST=unix://$sock docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    alive "$dir/service.pid" || { tail -20 "$dir/service.log"; echo "podman-engine: the service ended"; exit 1; }
    sleep 0.5
  done
  if ! alive "$dir/healthcheck.pid"; then
    # Podman runs a container's health check from a systemd timer it creates; without systemd
    # (this CI, most containers) nothing runs them, the containers stay "starting" for ever and
    # every `depends_on: condition: service_healthy` waits for ever. So this loop plays the
    # timer: `podman healthcheck run` for each running container that has a check, once per
    # its interval (Podman counts the retries and the start period), one run per container at
    # a time.
    setsid bash -c '
      declare -A running last interval
      while :; do
        now=$(date +%s)
        for c in $(podman ps -q --filter health=starting; podman ps -q --filter health=healthy;
                   podman ps -q --filter health=unhealthy); do
          if [[ -z ${interval[$c]:-} ]]; then
            secs=$(podman inspect --format "{{.Config.Healthcheck.Interval.Seconds}}" "$c" 2>/dev/null)
            secs=${secs%%.*}
            interval[$c]=$(( ${secs:-0} > 0 ? ${secs:-0} : 30 ))
          fi
          (( now - ${last[$c]:-0} >= interval[$c] )) || continue
          if [[ -z ${running[$c]:-} ]] || ! kill -0 "${running[$c]}" 2>/dev/null; then
            podman healthcheck run "$c" >/dev/null 2>&1 &
            running[$c]=$!
            last[$c]=$now
          fi
        done
        sleep '"$tick"'
      done' >"$dir/healthcheck.log" 2>&1 </dev/null 3>&- &
    echo $! >"$dir/healthcheck.pid"
  fi
  echo "podman-engine: $(podman --version), API on unix://$sock, health checks run by a timer (no systemd)"
  exports >&3
}

stop_group() { # the process group of a PID file: TERM, then KILL after 10 s
  local pidfile=$1 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop() {
  [[ -f $conf ]] && export CONTAINERS_CONF=$conf
  stop_group "$dir/healthcheck.pid"
  # The musicpipe project's containers (they outlive the API service); Podman's storage is
  # the machine's, so other projects' containers are left alone.
  if command -v podman >/dev/null; then
    local ids
    ids=$(podman ps -aq --filter "label=com.docker.compose.project=${MUSICPIPE_COMPOSE_PROJECT:-musicpipe}" 2>/dev/null || true)
    [[ -z $ids ]] || { echo "podman-engine: removing $(wc -w <<<"$ids") compose container(s)"; podman rm -f $ids >/dev/null; }
  fi
  stop_group "$dir/service.pid"
  rm -f "$sock"
  echo "podman-engine: stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  conf) write_conf; printf 'export CONTAINERS_CONF=%q\n' "$conf" >&3 ;;
  env) exports >&3 ;;
  *) echo "usage: $0 start|stop|conf|env"; exit 2 ;;
esac
