# Shared by the benchmarks: a free loopback port, and a PostgreSQL server of their own.
# Expects `work` (a temporary folder), `pids` (an array of PIDs to stop) and `python`.

free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_postgres() { # dir -> sets STATE_URL, STATE_PASSWORD_FILE (run as `postgres` when root)
  local d=$1 bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local as=(); [ "$(id -u)" = 0 ] && as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  mkdir -p "$d/data"; chmod 755 "$work" "$d"; echo "bench-pg-secret" > "$d/pw"; chmod 644 "$d/pw"
  [ "$(id -u)" = 0 ] && chown postgres: "$d/data"
  "${as[@]}" "$bin/initdb" -D "$d/data" -U onboard --auth=scram-sha-256 --pwfile="$d/pw" -E UTF8 >/dev/null
  local port; port=$(free_port)
  "${as[@]}" "$bin/postgres" -D "$d/data" -c listen_addresses=127.0.0.1 -c port="$port" \
    -c unix_socket_directories="$d/data" 2>"$d/log" & pids+=($!)
  STATE_URL="postgres://onboard@127.0.0.1:$port/postgres"; STATE_PASSWORD_FILE="$d/pw"
  for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && sleep 0.2 && return; sleep 0.05; done
  echo "postgres did not start" >&2; exit 1
}
