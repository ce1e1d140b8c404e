#!/usr/bin/env bash
# A throwaway single-node Ceph cluster (1 mon, 1 OSD, radosgw) on 127.0.0.1, for the S3 tests and
# benchmarks: no systemd, no disks, no containers. Written from ../shared/recipes/ceph-s3.md.
#
#   test/services/ceph.sh up     wipe $CEPH_DIR, start the cluster, create the S3 user and the test
#                                bucket; print the variables the S3 suites read (export lines, stdout).
#                                On failure (Ceph not installed, a daemon that does not come up) it says
#                                why on stderr and prints `false` on stdout, so that
#                                `eval "$(npm run -s services)"` fails too instead of setting nothing.
#   test/services/ceph.sh env    print those variables again
#   test/services/ceph.sh down   stop the daemons by the PIDs `up` recorded, then remove $CEPH_DIR
#                                (KEEP=1: keep it, with the logs under $CEPH_DIR/log)
#
# Env: CEPH_DIR (default ${TMPDIR:-/tmp}/mf-ceph), OSD_STORE=bluestore|memstore (default bluestore:
# the suites and the benchmark push GiBs, memstore keeps every byte in RAM), RGW_PORT (default 7480),
# S3_BUCKET (default mf-test). Ceph's mon ports are fixed (3300, 6789): one cluster per machine.
# Needs Debian's ceph-mon ceph-osd radosgw ceph-common, and curl.
set -euo pipefail

D=${CEPH_DIR:-${TMPDIR:-/tmp}/mf-ceph}
STORE=${OSD_STORE:-bluestore}
PORT=${RGW_PORT:-7480}
BUCKET=${S3_BUCKET:-mf-test}
# Fixed test credentials of a throwaway cluster on loopback (radosgw-admin takes them as given).
ACCESS_KEY=MFTESTACCESSKEY00000
SECRET_KEY=mftestsecretkey0000000000000000000000000
REGION=us-east-1

log() { echo "ceph.sh: $*" >&2; }

print_env() {
  cat <<EOF
export MF_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT
export MF_TEST_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
EOF
}

# wait_for <seconds> <command...>: poll every 0.2 s; on timeout print the daemon logs' tails and fail.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      log "timeout waiting for: $*"
      tail -n 30 "$D"/log/*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

down() {
  [ -d "$D/run" ] || { log "nothing to stop in $D"; return 0; }
  for d in rgw.a osd.0 mon.a; do
    local f="$D/run/$d.fgpid"
    [ -f "$f" ] || continue
    local p; p=$(cat "$f")
    # only a process that is still the daemon we started (its command line names it)
    if ! tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -e radosgw -e ceph-osd -e ceph-mon; then continue; fi
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then log "stopped; logs kept in $D/log"; else rm -rf "$D"; log "stopped; $D removed"; fi
}

# For `eval "$(… up)"`: whatever made `up` fail, the caller's eval fails as well (stdout is what it runs).
up_failed() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "failed; nothing was exported"
    [ -t 1 ] || echo "false  # ceph.sh up failed (see stderr)"
  fi
  return $rc
}

up() {
  trap up_failed EXIT
  local missing=()
  for c in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool ceph curl; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "Ceph is not installed (${missing[*]} not found on PATH). npm run services starts a Ceph but does not install it;"
    log "install Debian's packages first: sudo apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl"
    exit 1
  fi
  if [ -f "$D/run/mon.a.fgpid" ] && kill -0 "$(cat "$D/run/mon.a.fgpid")" 2>/dev/null; then
    log "a cluster from $D is running; stopping it first"
    down
  fi
  local t0=$SECONDS
  rm -rf "$D"
  mkdir -p "$D"/{mon,osd,run,log,rgw,crash}
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$D/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $D/keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
mon cluster log file = $D/log/cluster.log
crash dir = $D/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = $D/mon/\$id

[osd]
osd data = $D/osd/\$id
osd objectstore = $STORE
memstore device bytes = 8589934592
bluestore block path = $D/osd/\$id/block.img
bluestore block create = true
bluestore block size = 42949672960
osd memory target = 1073741824
bluestore cache autotune = false
bluestore cache size = 268435456

[client.rgw.a]
# tcp_nodelay: without it each listing, multi-delete or copy answer waits ~40 ms on a delayed ACK
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $D/rgw
rgw dns name = localhost
rgw gc obj min wait = 60
rgw gc processor period = 30
EOF
  export CEPH_CONF="$D/ceph.conf"
  local k="$D/keyring"
  ceph-authtool "$k" --create-keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" "$D/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$k"
  ceph-mon -f -i a >"$D/log/mon.a.stdout" 2>&1 &
  echo $! >"$D/run/mon.a.fgpid"
  wait_for 30 ceph -s --connect-timeout 5
  log "mon up"

  local id
  id=$(ceph osd new "$osd_uuid")
  mkdir -p "$D/osd/$id"
  ceph-osd -i "$id" --mkfs --osd-uuid "$osd_uuid" >"$D/log/osd.mkfs.stdout" 2>&1
  ceph-osd -f -i "$id" >"$D/log/osd.$id.stdout" 2>&1 &
  echo $! >"$D/run/osd.$id.fgpid"
  wait_for 60 bash -c "ceph osd dump | grep -q '^osd.$id up'"
  log "osd.$id up ($STORE)"

  radosgw -f -n client.rgw.a >"$D/log/rgw.stdout" 2>&1 &
  echo $! >"$D/run/rgw.a.fgpid"
  wait_for 60 curl -sf -o /dev/null "http://127.0.0.1:$PORT/"
  log "radosgw answering on 127.0.0.1:$PORT"

  radosgw-admin user create --uid=mf-test --display-name=mf-test \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  # (RGW wants x-amz-content-sha256 signed; this is the hash of the empty body)
  curl -sf -o /dev/null -X PUT -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" "http://127.0.0.1:$PORT/$BUCKET"
  log "bucket $BUCKET ready in $((SECONDS - t0)) s (stop: CEPH_DIR=$D $0 down)"
  print_env
  trap - EXIT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
