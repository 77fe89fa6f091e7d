# Shell functions the test servers' scripts share (scripts/control-plane/,
# scripts/s3/): source it, never run it. Processes are found by the PID file
# their up.sh wrote, never by name, so nothing else on the machine is touched.

# stop_pidfile FILE TRIES: SIGTERM the process FILE names, SIGKILL it after
# TRIES * 0.2 s if it lingers, and remove FILE.
stop_pidfile() {
  local pidfile=$1 tries=$2 pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# until_up PIDFILE TRIES INTERVAL COMMAND...: run COMMAND every INTERVAL
# seconds until it succeeds (status 0), at most TRIES times; give up early
# (status 1) when the process PIDFILE names has exited.
until_up() {
  local pidfile=$1 tries=$2 interval=$3 pid
  shift 3
  pid="$(cat "$pidfile")"
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep "$interval"
  done
  return 1
}

# up_or_stop WHAT PIDFILE LOGFILE DOWN TRIES INTERVAL COMMAND...: until_up,
# or else say so with the last lines of LOGFILE (through the caller's `log`),
# run the DOWN script and exit 1.
up_or_stop() {
  local what=$1 pidfile=$2 logfile=$3 down=$4 tries=$5 interval=$6
  shift 6
  until_up "$pidfile" "$tries" "$interval" "$@" && return 0
  log "$what did not come up; its log:"
  tail -30 "$logfile" >&2 || true
  "$down" >&2 || true
  exit 1
}
