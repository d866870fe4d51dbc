#!/usr/bin/env bash
# The amd64 .deb's unit under a real systemd (PID 1 of a podman container
# started with --systemd=always): the hardened unit starts (DynamicUser, no
# capabilities, seccomp), READY=1 reaches systemd (`systemctl start` returns,
# the status text is the server's), the watchdog pings keep it running past
# WatchdogSec, a Redis URL nobody answers leaves it activating with STATUS=
# saying so, and stop is clean. What systemd does with the messages, which
# tests/e2e/test_systemd_notify.py cannot show.
#
# podman only (--systemd=always); the run flags serve the image build too.
#
#   ENGINE="podman --runtime runc" RUN_FLAGS="--ulimit ..." check_systemd_service.sh IMAGE RELEASE_DIR
# (words without spaces, as scripts/container-test sets them)
set -euo pipefail
read -r -a engine <<<"$ENGINE"
read -r -a run_flags <<<"${RUN_FLAGS:-}"
base=$1 release=$2
image=localhost/katsubushi-systemd-check:bookworm
fail() { echo "check_systemd_service: $*" >&2; exit 1; }

if ! "${engine[@]}" image inspect "$image" >/dev/null 2>&1; then
  context=$(mktemp -d)
  cat >"$context/Containerfile" <<EOF2
FROM $base
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*
CMD ["/sbin/init"]
EOF2
  "${engine[@]}" build "${run_flags[@]}" -q -t "$image" "$context" >/dev/null
  rm -rf "$context"
fi

cid=$("${engine[@]}" run -d --systemd=always "${run_flags[@]}" -v "$release:/release:ro" "$image")
trap '"${engine[@]}" rm -f "$cid" >/dev/null' EXIT
inside() { "${engine[@]}" exec "$cid" "$@"; }
for _ in $(seq 50); do
  [[ $(inside systemctl is-system-running 2>/dev/null || true) =~ running|degraded ]] && break
  sleep 0.2
done

inside bash -c 'dpkg -i /release/katsubushi_*_amd64.deb >/dev/null'
inside bash -c 'echo KATSUBUSHI_WORKER_ID=5 >>/etc/default/katsubushi'
inside timeout 20 systemctl start katsubushi || { inside journalctl -u katsubushi --no-pager | tail; fail "start failed"; }
[[ $(inside systemctl show -P StatusText katsubushi) == "issuing IDs as worker id 5" ]] || fail "status text"
inside bash -c 'exec 3<>/dev/tcp/127.0.0.1/11212; printf "get id\r\n" >&3; head -2 <&3 | tail -1 | tr -d "\r" >/tmp/id'
id=$(inside cat /tmp/id)
(( (id >> 12 & 1023) == 5 )) || fail "$id is not from worker id 5"
inside bash -c 'grep -q "^CapEff:[[:space:]]*0*$" /proc/$(systemctl show -P MainPID katsubushi)/status' || fail "capabilities left"
[[ $(inside systemctl show -P User katsubushi) == katsubushi ]] || fail "not DynamicUser"
sleep 32  # past WatchdogSec=30s: only WATCHDOG=1 keeps it running
[[ $(inside systemctl show -P NRestarts katsubushi) == 0 && $(inside systemctl is-active katsubushi) == active ]] ||
  fail "restarted by the watchdog"
inside systemctl stop katsubushi
echo "check_systemd_service: started under systemd as the dynamic user, get -> $id, alive past WatchdogSec, stopped"

inside bash -c 'sed -i "/^KATSUBUSHI_WORKER_ID=5/d" /etc/default/katsubushi
            echo "KATSUBUSHI_REDIS=redis://127.0.0.1:6390/0?ns=kb" >>/etc/default/katsubushi'
inside systemctl start --no-block katsubushi
sleep 3
[[ $(inside systemctl is-active katsubushi || true) == activating ]] || fail "not activating without Redis"
status=$(inside systemctl show -P StatusText katsubushi)
[[ $status == *"cannot reach Redis"* ]] || fail "status without Redis: $status"
inside systemctl stop katsubushi
echo "check_systemd_service: no Redis -> activating, status: $status"
