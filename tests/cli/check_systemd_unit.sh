#!/usr/bin/env bash
# deploy/systemd: `systemd-analyze verify` passes on the unit with no message
# at all (unknown keys and bad values are only warnings there, so any output
# fails), and every KATSUBUSHI_* variable the environment file documents is a
# flag of the server (`katsubushi -help`).
#
#   check_systemd_unit.sh SERVER_BINARY
# verify resolves ExecStart= and the units it depends on, so it runs against
# a throwaway root: the host's system units, the unit under test, and the
# server at /usr/bin/katsubushi as the package installs it.
set -euo pipefail
server=$1
deploy=$(cd "$(dirname "$0")/../../deploy/systemd" && pwd)
root=$(mktemp -d /tmp/katsubushi-unit.XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/usr/bin" "$root/lib/systemd" "$root/etc/systemd/system" "$root/etc/default"
cp -a /lib/systemd/system "$root/lib/systemd/"
cp "$server" "$root/usr/bin/katsubushi"
cp "$deploy/katsubushi.service" "$root/etc/systemd/system/"
cp "$deploy/katsubushi.env" "$root/etc/default/katsubushi"
if ! out=$(systemd-analyze verify --root="$root" katsubushi.service 2>&1) || [[ -n $out ]]; then
  echo "systemd-analyze verify: ${out:-failed}" >&2
  exit 1
fi

help=$("$server" -help 2>&1 || true)
status=0
for var in $(sed -n 's/^#\{0,1\}\(KATSUBUSHI_[A-Z_]*\)=.*/\1/p' "$deploy/katsubushi.env"); do
  flag=$(echo "${var#KATSUBUSHI_}" | tr 'A-Z_' 'a-z-')
  if ! grep -q -- "^  -$flag\b" <<<"$help"; then
    echo "katsubushi.env: $var is not a flag of the server (-$flag)" >&2
    status=1
  fi
done
exit $status
