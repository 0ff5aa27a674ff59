#!/usr/bin/env bash
# Operate the live system: ibsim (when ib_connection.mode is sim), the engine (main.py), the risk monitor and the
# operator dashboard (dashboard/, when dashboard.enabled).
#
#   ./run_system.sh [start] [--config FILE] [--port PORT] [--duration SECONDS] [--timeout SECONDS]
#   ./run_system.sh status  [--config FILE] [--port PORT] [--json | --watch [SECONDS]]
#   ./run_system.sh stop    [--config FILE] [--port PORT] [--timeout SECONDS]
#
# start     bootstraps .venv if missing, validates the config (exit 2 with every problem), starts ibsim on
#           127.0.0.1:<ib_connection.port> (sim mode: a fresh account, so the previous sim run's journal, snapshot
#           and daily equity move to <state_dir>/sim_runs/<time>/; kill flags stay) and waits for it, then main.py and
#           risk_monitor.py in the background. In sim mode with a strategy's signal veto enabled, it first publishes
#           the features of ibsim's history to the Feast store (scripts/refresh_features.py --data ibsim: applies the
#           repo and materializes; log <log_dir>/features.log); the engine writes each later session's itself.
#           Then the dashboard (python -m dashboard) on 127.0.0.1:<dashboard.port>; its link, with the token from
#           <dashboard.token_path> (created 0600 on the first run), is printed once the page answers.
#           Logs: <log_dir>/{ibsim,main,risk_monitor,dashboard}.log; pid files: <state_dir>/pids/<same>.pid.
#           Refuses to start while a pid file names a live process.
#           With --duration S (the demo): runs S seconds, stops everything gracefully, prints a summary, exits 0
#           (1 if a process died on its own before the end).
# status    scripts/system_status.py: processes, heartbeats, positions with cost and P&L, STATUS over the command
#           channel; --json prints one machine-readable object, --watch [SECONDS] refreshes in the terminal.
#           Exit 0 when every process is running, 1 otherwise.
# stop      SIGTERM to the dashboard, the monitor, the engine, then ibsim (each to its process group); each gets --timeout
#           seconds (default 10) to exit, then SIGKILL (said so). Pid files are removed. Exit 0.
#
# --port PORT overrides ib_connection.port (1-65535) for every process: ibsim, main.py and risk_monitor.py.
# A port already taken is refused naming the process that holds it (when this user can see it).
# Relative paths in the config are relative to this folder (every process runs here).
# Environment: ENGINE_CMD replaces ".venv/bin/python main.py" (split on spaces; tests use a stand-in engine),
# IBSIM_START_TIMEOUT_S (default 60) bounds the wait for ibsim's port, START_GRACE_S (default 2) is how long a
# freshly started process must stay up for start to succeed.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die_usage() {
  echo "run_system.sh: $*" >&2
  echo "usage: ./run_system.sh [start|status|stop] [--config FILE] [--port PORT] [--duration SECONDS]" \
    "[--timeout SECONDS]" >&2
  exit 2
}

command_name="start"
case "${1:-}" in
  start | status | stop) command_name="$1"; shift ;;
  -h | --help) usage; exit 0 ;;
esac

config="config.yaml"
port_override=""
port_given=""
duration=""
stop_timeout="10"
status_args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --config) [ "$#" -ge 2 ] || die_usage "--config needs a file"; config="$2"; shift 2 ;;
    --config=*) config="${1#--config=}"; shift ;;
    --port) [ "$#" -ge 2 ] || die_usage "--port needs a port number"; port_override="$2"; port_given=1; shift 2 ;;
    --port=*) port_override="${1#--port=}"; port_given=1; shift ;;
    --duration) [ "$#" -ge 2 ] || die_usage "--duration needs seconds"; duration="$2"; shift 2 ;;
    --duration=*) duration="${1#--duration=}"; shift ;;
    --timeout) [ "$#" -ge 2 ] || die_usage "--timeout needs seconds"; stop_timeout="$2"; shift 2 ;;
    --timeout=*) stop_timeout="${1#--timeout=}"; shift ;;
    --json) status_args+=(--json); shift ;;
    --watch)
      if [ "$#" -ge 2 ] && [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]]; then status_args+=(--watch "$2"); shift 2
      else status_args+=(--watch 2); shift; fi ;;
    --watch=*) status_args+=(--watch "${1#--watch=}"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
is_positive_int() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
if [ -n "$duration" ]; then
  [ "$command_name" = "start" ] || die_usage "--duration applies to start only"
  is_positive_int "$duration" || die_usage "--duration must be a whole number of seconds > 0 (got '$duration')"
fi
[ "${#status_args[@]}" -eq 0 ] || [ "$command_name" = "status" ] || die_usage "--json and --watch apply to status only"
is_positive_int "$stop_timeout" || die_usage "--timeout must be a whole number of seconds > 0 (got '$stop_timeout')"
if [ -n "$port_given" ]; then
  { [[ "$port_override" =~ ^[0-9]{1,5}$ ]] && [ "$port_override" -ge 1 ] && [ "$port_override" -le 65535 ]; } \
    || die_usage "--port must be a whole number from 1 to 65535 (got '$port_override')"
fi

# The config path is the caller's: make it absolute before moving to the repository folder.
if [ -e "$config" ]; then
  config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
fi
cd "$(dirname "$0")"

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no .venv yet: bootstrapping it (scripts/bootstrap_venv.sh runtime)" >&2
  scripts/bootstrap_venv.sh runtime
fi

# --- configuration (validated by the project's loader; exit 2 with its message on a bad config) -------------------
read_config() {
  local out rc=0
  out="$("$PY" -c '
import sys
from core.config_loader import load_config
from core.errors import ConfigError
try:
    c = load_config(sys.argv[1], [f"ib_connection.port={sys.argv[2]}"] if sys.argv[2] else [])
except ConfigError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
vetoed = [n for n in type(c.strategies).model_fields
          if getattr(c.strategies, n).enabled and getattr(c.strategies, n).veto.enabled]
print("\t".join([c.ib_connection.mode, c.ib_connection.host, str(c.ib_connection.port), c.system.log_dir,
                 c.system.state_dir, repr(c.ibsim.speed), repr(c.ibsim.demo_speed), str(c.ibsim.seed), c.ibsim.data,
                 repr(c.portfolio.initial_capital), c.ibsim.cost_profile, ",".join(vetoed) or "-",
                 "1" if c.dashboard.enabled else "0", c.dashboard.host, str(c.dashboard.port)]))
' "$config" "$port_override")" || rc=$?
  if [ "$rc" -eq 2 ]; then
    echo "run_system.sh: invalid config, nothing started" >&2
    exit 2
  elif [ "$rc" -ne 0 ]; then
    echo "run_system.sh: could not read the config with $PY (exit $rc); is .venv complete?" >&2
    exit 1
  fi
  IFS=$'\t' read -r ib_mode ib_host ib_port log_dir state_dir sim_speed sim_demo_speed sim_seed sim_data \
    sim_cash sim_cost_profile veto_strategies dash_enabled dash_host dash_port <<<"$out"
  pid_dir="$state_dir/pids"
}

# --- processes -------------------------------------------------------------------------------------------------------
ROLES_START=(ibsim main risk_monitor dashboard)
ROLES_STOP=(dashboard risk_monitor main ibsim)
ROLE_TAG=IBKR_SYSTEM_ROLE  # set in each started process's environment: a reused pid is never mistaken for ours

pid_file() { echo "$pid_dir/$1.pid"; }

read_pid() {  # role -> pid on stdout, or nothing
  local file pid
  file="$(pid_file "$1")"
  [ -f "$file" ] || return 0
  pid="$(head -n 1 "$file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && echo "$pid"
  return 0
}

running() {  # pid: the process exists and is not a zombie
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)"
  [ "$state" != "Z" ]
}

is_alive() {  # pid role: running, not a zombie, and started by us as that role (where /proc tells)
  local pid="$1" role="$2" state
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)"
    [ "$state" != "Z" ] || return 1
  fi
  if [ -r "/proc/$pid/environ" ]; then
    { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "$ROLE_TAG=$role" || return 1  # gone meanwhile: not alive
  fi
  return 0
}

group_alive() {  # pgid: does a live (non-zombie) process remain in the group?
  ps -eo pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

signal_process() {  # signal pid: the whole process group when pid leads one (started through setsid)
  local sig="$1" pid="$2" pgid
  pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
  if [ "$pgid" = "$pid" ]; then
    kill "-$sig" -- "-$pid" 2>/dev/null || true
  else
    kill "-$sig" "$pid" 2>/dev/null || true
  fi
}

launch() {  # role log command...: start in its own session/process group, record the pid
  local role="$1" log="$2"
  shift 2
  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) run_system.sh starts $role: $*" >>"$log"
  if command -v setsid >/dev/null 2>&1; then
    env "$ROLE_TAG=$role" setsid "$@" </dev/null >>"$log" 2>&1 &
  else
    env "$ROLE_TAG=$role" "$@" </dev/null >>"$log" 2>&1 &
  fi
  local pid=$!
  echo "$pid" >"$(pid_file "$role").tmp"
  mv -f "$(pid_file "$role").tmp" "$(pid_file "$role")"
  echo "started $role: pid $pid, log $log"
}

stop_role() {  # role timeout_s
  local role="$1" timeout_s="$2" pid waited=0 limit
  pid="$(read_pid "$role")"
  if [ -z "$pid" ]; then
    rm -f "$(pid_file "$role")"
    return 0
  fi
  if ! is_alive "$pid" "$role"; then
    echo "$role: not running (pid $pid); pid file removed"
    rm -f "$(pid_file "$role")"
    return 0
  fi
  echo "$role: SIGTERM to pid $pid"
  signal_process TERM "$pid"
  limit=$((timeout_s * 10))
  while is_alive "$pid" "$role" && [ "$waited" -lt "$limit" ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if is_alive "$pid" "$role"; then
    echo "$role: pid $pid still running after ${timeout_s}s: sending SIGKILL" >&2
    signal_process KILL "$pid"
    waited=0
    while is_alive "$pid" "$role" && [ "$waited" -lt 50 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
  else
    echo "$role: stopped (pid $pid)"
  fi
  waited=0
  while group_alive "$pid" && [ "$waited" -lt 10 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if group_alive "$pid"; then
    echo "$role: processes of group $pid outlived pid $pid: sending SIGKILL to the group" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$role")"
}

stop_all() {  # timeout_s
  local role
  [ -d "$pid_dir" ] || return 0
  for role in "${ROLES_STOP[@]}"; do
    stop_role "$role" "$1"
  done
}

port_open() {  # port: does 127.0.0.1:port accept a connection?
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

log_tail() {  # role
  local log="$log_dir/$1.log"
  [ -f "$log" ] || return 0
  echo "--- last lines of $log:" >&2
  tail -n 15 "$log" >&2
}

start_failed() {  # message...
  echo "run_system.sh: $*; stopping what was started" >&2
  trap - INT TERM
  stop_all 5
  exit 1
}

refuse_if_running() {
  local role pid running=0
  for role in "${ROLES_START[@]}"; do
    pid="$(read_pid "$role")"
    [ -n "$pid" ] || continue
    if is_alive "$pid" "$role"; then
      echo "run_system.sh: refusing to start: $role is already running (pid $pid, $(pid_file "$role"));" \
        "run ./run_system.sh stop first" >&2
      running=1
    else
      echo "removing stale pid file $(pid_file "$role") (pid $pid is not running)"
      rm -f "$(pid_file "$role")"
    fi
  done
  [ "$running" -eq 0 ] || exit 1
}

wait_for_ibsim() {  # port
  local waited=0 limit=$((${IBSIM_START_TIMEOUT_S:-60} * 10)) pid
  pid="$(read_pid ibsim)"
  until port_open "$1"; do
    # the pid was recorded a moment ago, so no role check here: until the child has exec'd env (a window that
    # grows under load) its /proc environ lacks the role tag, and is_alive would call a starting ibsim dead
    running "$pid" || { log_tail ibsim; start_failed "ibsim exited before listening on port $1"; }
    [ "$waited" -lt "$limit" ] || { log_tail ibsim; start_failed "ibsim did not accept connections on port $1"; }
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "ibsim accepts connections on 127.0.0.1:$1"
}

check_still_running() {  # roles...: prints the first dead role and fails
  local role pid
  for role in "$@"; do
    pid="$(read_pid "$role")"
    if [ -z "$pid" ] || ! is_alive "$pid" "$role"; then
      echo "$role"
      return 1
    fi
  done
}

archive_sim_books() {  # a new ibsim is a new, flat account: the books of the previous sim run cannot match it
  # the order and risk logs go too: the dashboard and status would otherwise count the last run's fills as this one's
  local f dest files=()
  for f in order_journal.jsonl portfolio_snapshot.json daily_equity.csv risk_monitor_marks.json; do
    [ -e "$state_dir/$f" ] && files+=("$state_dir/$f")
  done
  for f in order_submissions.csv risk_log.csv; do
    [ -e "$log_dir/$f" ] && files+=("$log_dir/$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  dest="$state_dir/sim_runs/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$dest"
  mv "${files[@]}" "$dest/"
  echo "sim mode: ibsim starts with a fresh account, so the previous sim run's books were moved to $dest"
}

refresh_sim_features() {  # a signal veto reads Feast's online store: apply it and publish ibsim's history first
  local log="$log_dir/features.log"
  echo "signal veto on ($veto_strategies): publishing the features of ibsim's history to the feature store" \
    "(scripts/refresh_features.py --data ibsim; log $log)"
  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) run_system.sh: refresh_features.py --data ibsim" >>"$log"
  if ! "$PY" scripts/refresh_features.py --config "$config" --data ibsim >>"$log" 2>&1; then
    echo "--- last lines of $log:" >&2
    tail -n 15 "$log" >&2
    trap - INT TERM
    echo "run_system.sh: publishing the features failed; nothing started" >&2
    exit 1
  fi
  grep -E '^(features|latest session close):' "$log" | tail -n 2 | sed 's/^/  /'
}

dash_probe_host() {  # where to knock for the dashboard: its loopback host (bash's /dev/tcp takes names and ::1)
  case "$dash_host" in
    localhost) echo 127.0.0.1 ;;
    *) echo "$dash_host" ;;
  esac
}

launch_dashboard() {  # refuses a taken port before starting; the token is created now, printed once the page answers
  if (exec 3<>"/dev/tcp/$(dash_probe_host)/$dash_port") 2>/dev/null; then
    local holder
    holder="$("$PY" scripts/port_holder.py "$dash_port" 2>/dev/null || true)"
    start_failed "dashboard port $dash_host:$dash_port already accepts connections (held by ${holder:-a process" \
      "this user cannot see}); choose another dashboard.port or set dashboard.enabled: false"
  fi
  launch dashboard "$log_dir/dashboard.log" "$PY" -m dashboard --config "$config"
}

wait_for_dashboard() {  # prints the ready link once the page accepts connections
  local waited=0 limit=$((${DASHBOARD_START_TIMEOUT_S:-30} * 10)) url
  until (exec 3<>"/dev/tcp/$(dash_probe_host)/$dash_port") 2>/dev/null; do
    check_still_running dashboard >/dev/null || { log_tail dashboard; start_failed "the dashboard exited before serving"; }
    [ "$waited" -lt "$limit" ] || { log_tail dashboard; start_failed "the dashboard did not serve on port $dash_port"; }
    sleep 0.1
    waited=$((waited + 1))
  done
  url="$("$PY" -m dashboard --config "$config" --print-url)"
  echo "dashboard ready: $url"
}

do_start() {
  local engine_cmd=() roles=(main risk_monitor) dead waited=0 since_ns
  read_config
  refuse_if_running
  mkdir -p "$log_dir" "$pid_dir"
  if [ -n "${ENGINE_CMD:-}" ]; then
    read -r -a engine_cmd <<<"$ENGINE_CMD"
    echo "engine command overridden by ENGINE_CMD: ${engine_cmd[*]}"
  else
    [ -f main.py ] || { echo "run_system.sh: main.py not found in $(pwd); nothing started" >&2; exit 1; }
    engine_cmd=("$PY" main.py)
  fi
  [ -f risk_monitor.py ] || { echo "run_system.sh: risk_monitor.py not found; nothing started" >&2; exit 1; }
  since_ns="$(date +%s%N)"
  trap 'start_failed "interrupted"' INT TERM
  if [ "$ib_mode" = "sim" ]; then
    case "$ib_host" in
      127.0.0.1 | localhost) ;;
      *) echo "warning: ib_connection.host is $ib_host but ibsim binds 127.0.0.1 only" >&2 ;;
    esac
    if port_open "$ib_port"; then
      local holder
      holder="$("$PY" scripts/port_holder.py "$ib_port" 2>/dev/null || true)"
      echo "run_system.sh: 127.0.0.1:$ib_port already accepts connections (held by ${holder:-a process this user" \
        "cannot see: another ibsim or TWS?}); free it, or choose another with --port or ib_connection.port" >&2
      exit 1
    fi
    archive_sim_books
    [ "$veto_strategies" = "-" ] || refresh_sim_features
    local speed="$sim_speed"
    if [ -n "$duration" ]; then
      speed="$sim_demo_speed"
      echo "demo run: ibsim replays at ${speed}x (ibsim.demo_speed), so the daily strategies decide every few seconds"
    fi
    # the sim account starts with the engine's portfolio.initial_capital, so the monitor's loss percentages (of the
    # account's NetLiquidation) and the engine's (of its equity) measure the same money
    launch ibsim "$log_dir/ibsim.log" "$PY" -m ibsim --host 127.0.0.1 --port "$ib_port" --speed "$speed" \
      --seed "$sim_seed" --data "$sim_data" --cash-usd "$sim_cash" --cost-profile "$sim_cost_profile"
    wait_for_ibsim "$ib_port"
    roles=(ibsim main risk_monitor)
  else
    echo "mode $ib_mode: using the TWS / IB Gateway at $ib_host:$ib_port (no ibsim)"
  fi
  launch main "$log_dir/main.log" "${engine_cmd[@]}" --config "$config" --port "$ib_port"
  launch risk_monitor "$log_dir/risk_monitor.log" "$PY" risk_monitor.py --config "$config" --port "$ib_port"
  if [ "$dash_enabled" = "1" ]; then
    launch_dashboard
    roles+=(dashboard)
  fi
  while [ "$waited" -lt $((${START_GRACE_S:-2} * 10)) ]; do
    if ! dead="$(check_still_running "${roles[@]}")"; then
      log_tail "$dead"
      start_failed "$dead exited right after start"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  [ "$dash_enabled" != "1" ] || wait_for_dashboard
  if [ -z "$duration" ]; then
    trap - INT TERM
    echo "system running (config $config); ./run_system.sh status | ./run_system.sh stop"
    return 0
  fi
  run_for_duration "$since_ns" "${roles[@]}"
}

run_for_duration() {  # since_ns roles...
  local since_ns="$1" end=$((SECONDS + duration)) dead="" rc=0
  shift
  trap 'echo "interrupted: stopping"; stop_all "$stop_timeout"; exit 130' INT TERM
  echo "running for ${duration}s"
  while [ "$SECONDS" -lt "$end" ]; do
    if ! dead="$(check_still_running "$@")"; then
      echo "run_system.sh: $dead exited on its own before the end of the run" >&2
      log_tail "$dead"
      rc=1
      break
    fi
    sleep 0.5
  done
  stop_all "$stop_timeout"
  trap - INT TERM
  "$PY" scripts/system_status.py --config "$config" --summary --since-ns "$since_ns" || true
  return "$rc"
}

case "$command_name" in
  start) do_start ;;
  status)
    read_config
    exec "$PY" scripts/system_status.py --config "$config" ${status_args[@]+"${status_args[@]}"}
    ;;
  stop)
    read_config
    stop_all "$stop_timeout"
    echo "system stopped"
    ;;
esac
