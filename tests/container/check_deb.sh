#!/usr/bin/env bash
# The amd64 .deb of scripts/release in a clean Debian container, as an
# operator installs it: dpkg -i with nothing else installed first; the files,
# the conffile and the unit are where the unit and the README say; the
# installed server started with the installed settings (as the unit's
# EnvironmentFile= does, plus a worker id) answers a memcached get on
# 127.0.0.1 with an ID of that worker id, and stops with exit 0 on SIGTERM;
# remove keeps the settings, purge removes them.
#
#   ENGINE="podman --runtime runc" RUN_FLAGS="--ulimit ..." check_deb.sh IMAGE RELEASE_DIR
# (words without spaces, as scripts/container-test sets them)
set -euo pipefail
read -r -a engine <<<"$ENGINE"
read -r -a run_flags <<<"${RUN_FLAGS:-}"
image=$1 release=$2
deb=$(cd "$release" && ls katsubushi_*_amd64.deb)

"${engine[@]}" run --rm "${run_flags[@]}" -v "$release:/release:ro" "$image" bash -euo pipefail -c '
deb=/release/$1
dpkg -i "$deb" >/dev/null
for f in /usr/bin/katsubushi /usr/bin/katsubushi-dump /lib/systemd/system/katsubushi.service \
         /etc/default/katsubushi /usr/share/doc/katsubushi/copyright; do
  test -e "$f" || { echo "check_deb: $f is missing" >&2; exit 1; }
done
dpkg-query -W -f="\${Conffiles}\n" katsubushi | grep -q "^ /etc/default/katsubushi " ||
  { echo "check_deb: /etc/default/katsubushi is not a conffile" >&2; exit 1; }
grep -q "^ExecStart=/usr/bin/katsubushi$" /lib/systemd/system/katsubushi.service

set -a; . /etc/default/katsubushi; set +a
KATSUBUSHI_WORKER_ID=42 /usr/bin/katsubushi -log-level=warning & pid=$!
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/11212) 2>/dev/null; then break; fi
  sleep 0.1
done
exec 3<>/dev/tcp/127.0.0.1/11212
printf "get id\r\n" >&3
read -r header <&3; read -r id <&3; read -r end <&3
exec 3>&-
id=$(printf %s "$id" | tr -d "\r"); end=$(printf %s "$end" | tr -d "\r")
[[ $header == "VALUE id 0 "* && $end == END ]] || { echo "check_deb: bad reply: $header" >&2; exit 1; }
(( (id >> 12 & 1023) == 42 )) || { echo "check_deb: $id is not from worker id 42" >&2; exit 1; }
/usr/bin/katsubushi-dump "$id" | grep -q "\"worker_id\":42"
kill -TERM "$pid"
wait "$pid" || { echo "check_deb: exit $? after SIGTERM" >&2; exit 1; }
echo "check_deb: installed server: get -> $id (worker 42), SIGTERM -> exit 0"

dpkg -r katsubushi >/dev/null
test ! -e /usr/bin/katsubushi && test -e /etc/default/katsubushi
dpkg -P katsubushi >/dev/null
test ! -e /etc/default/katsubushi
echo "check_deb: remove keeps /etc/default/katsubushi, purge removes it"
' check_deb "$deb"
