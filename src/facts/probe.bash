# probe.bash: read a target in one round trip: the probe facts, what the
# target offers (systemd, apt, rsync), its failed units, its current
# generation's manifest (only when it is not the copy the CLI has), whether
# the last apply committed, and the managed paths that changed since the last
# commit. Prints KEY=VALUE lines (readProbe, probe.ts).
#
# Data in front (probeScript, probe.ts):
#   known_manifest   the sha256 of the CLI's copy of the manifest ('' for none)
#   generations_dir, pending_file, created_dirs_files, public_dir
#   packages_cache, probe_records  where a probe under the lock may keep what it read
#   locked           (set by lock.bash only) this probe holds the lock
# and probe_facts, which prints the facts of the table in probe-values.ts
# from what is read below. Functions from root.bash, inspect.bash and
# publish.bash come before.
# shellcheck shell=bash disable=SC2154

set -u
export LC_ALL=C
G=$R$generations_dir
P=$R$pending_file
fact() { printf '%s=%s\n' "$1" "$2"; }
# Few processes: each costs milliseconds, and a deploy with nothing to do is mostly this.
# What several facts share is read once, here; each fact's value is made on the operator's side.
# os-release is read, not sourced: a value is data.
# shellcheck disable=SC2034 # probe_facts reads them
os_ID='' os_VERSION_ID='' os_VERSION_CODENAME=''
if [ -r "$R/etc/os-release" ]; then
  while IFS='=' read -r key value; do
    case $key in ID | VERSION_ID | VERSION_CODENAME) printf -v "os_$key" '%s' "$value" ;; esac
  done < "$R/etc/os-release"
fi
memory_kb=0
# shellcheck disable=SC2034 # probe_facts reads it
while read -r key value _; do if [ "$key" = MemTotal: ]; then memory_kb=$value; break; fi; done < /proc/meminfo
# shellcheck disable=SC2034 # probe_facts reads it
read -r kernel < /proc/sys/kernel/osrelease
# The CPUs this shell may run on, as nproc counts them (its affinity list), without nproc's process;
# nproc itself when the OpenMP variables it honours are set or the list reads otherwise.
cpus=0
while read -r key value; do
  [ "$key" = Cpus_allowed_list: ] || continue
  for range in ${value//,/ }; do
    if [[ $range =~ ^([0-9]+)-([0-9]+)$ ]]; then
      cpus=$((cpus + 10#${BASH_REMATCH[2]} - 10#${BASH_REMATCH[1]} + 1))
    elif [[ $range =~ ^[0-9]+$ ]]; then
      cpus=$((cpus + 1))
    else
      cpus=0 && break
    fi
  done
  break
done < /proc/self/status
# shellcheck disable=SC2034 # probe_facts reads it
if [ "$cpus" -lt 1 ] || [ -n "${OMP_NUM_THREADS:-}${OMP_THREAD_LIMIT:-}" ]; then cpus=$(nproc); fi
# The installed packages, each with its architecture: dpkg's own is the machine's (what dpkg --print-architecture says, without its process).
# Parsed here, not with awk: one process less each.
# Under the lock (locked, lock.bash) dpkg-query's answer is kept, with a stamp made before it ran,
# and read again while nothing in dpkg's database is newer than the stamp: its status file, its directory
# (dpkg writes status-new and renames it) and updates/ (the journal of a run not yet merged). A time equal to
# the stamp's counts as newer (file times are coarse). Any probe may read it; only a locked one writes it.
packages='' cache=$R$packages_cache db=$R/var/lib/dpkg
if [ -f "$cache" ] && [ "$cache.stamp" -nt "$db/status" ] && [ "$cache.stamp" -nt "$db" ] && [ "$cache.stamp" -nt "$db/updates" ]; then
  IFS= read -r -d '' packages < "$cache" || true
else
  [ -n "${locked:-}" ] && : > "$cache.stamp.new"
  packages=$(exec dpkg-query -W -f='${db:Status-Status}=${Package}=${Architecture} ' 2>/dev/null) || true
  # The list first, then its stamp: a list never has an older stamp than what it was read after.
  if [ -n "${locked:-}" ] && [ -n "$packages" ] && printf '%s' "$packages" > "$cache.new"; then
    mv -f -- "$cache.new" "$cache" && mv -f -- "$cache.stamp.new" "$cache.stamp"
  fi
fi
arch='' dpkg_item=' installed=dpkg=([^ ]+)'
# shellcheck disable=SC2034 # probe_facts reads it
if [[ " $packages" =~ $dpkg_item ]]; then arch=${BASH_REMATCH[1]}; else arch=$(uname -m); fi
# One systemctl: the running systemd's version, and how many units are failed (listed below only when some are).
systemd_version='' failed_count=''
while IFS='=' read -r key value; do
  case $key in Version) systemd_version=$value ;; NFailedUnits) failed_count=$value ;; esac
done < <(systemctl show -p Version -p NFailedUnits 2>/dev/null)
if [ -z "$systemd_version" ]; then systemd_version=$(systemctl --version 2>/dev/null) || true; systemd_version=${systemd_version%%$'\n'*}; fi
# WireGuard in the running kernel: loaded or built in (/sys, like /proc, is the kernel's), else a module of it
# for this kernel where Debian's and Ubuntu's kernels put it (no process), else wherever modinfo finds one:
# only where this kernel has modules at all (a container has none; modinfo would fail, at the cost of a process).
# shellcheck disable=SC2034 # probe_facts reads it
wireguard_kernel=no
if [ -d /sys/module/wireguard ]; then
  wireguard_kernel=yes
else
  for module in "$R/lib/modules/$kernel/kernel/drivers/net/wireguard/wireguard.ko"*; do
    [ -e "$module" ] && wireguard_kernel=yes
    break
  done
  if [ "$wireguard_kernel" = no ] && [ -d "$R/lib/modules/$kernel" ] && PATH=$PATH:/usr/sbin:/sbin modinfo wireguard >/dev/null 2>&1; then
    wireguard_kernel=yes
  fi
fi
# The upstream DNS servers, at most 8: where the dns layer's dnsmasq runs, its upstream (resolved then names
# dnsmasq only, and that is where the layer's first deploy took them from); else systemd-resolved's list when it
# has one (its stub's resolv.conf names only itself); else resolv.conf's. Never resolved's stubs, nor what is
# not a plain address (a zone, a typo): a resolv.conf the machine lives with may not fail its build. The
# operator's side checks them again.
nameservers='' nameserver_count=0 resolv_conf=$R/run/systemd/resolve/resolv.conf nameserver_line=nameserver
[ -e "$resolv_conf" ] || resolv_conf=$R/etc/resolv.conf
if [ -e "$R/usr/local/etc/homecloud/dns/dnsmasq.conf" ]; then resolv_conf=$R/usr/local/etc/homecloud/dns/dnsmasq.conf nameserver_line=server; fi
if [ -r "$resolv_conf" ]; then
  while [ "$nameserver_count" -lt 8 ] && { read -r key value _ || [ -n "$key" ]; }; do
    if [ "$nameserver_line" = server ]; then
      # dnsmasq's server=ADDRESS lines; server=/domain/ADDRESS ones are the zone's, not upstream.
      case $key in server=*) value=${key#server=} key=server ;; *) continue ;; esac
    fi
    [ "$key" = "$nameserver_line" ] || continue
    case $value in '' | 127.0.0.53 | 127.0.0.54) continue ;; esac
    [[ $value =~ ^[0-9.]+$|^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*$ ]] || continue
    nameservers+=${nameservers:+ }$value
    nameserver_count=$((nameserver_count + 1))
  done < "$resolv_conf"
fi
probe_facts
has() { if command -v "$2" >/dev/null 2>&1; then fact "$1" yes; else fact "$1" no; fi; }
if [ -d "$R/run/systemd/system" ]; then fact HC_SYSTEMD yes; else fact HC_SYSTEMD no; fi
has HC_APT apt-get
has HC_RSYNC rsync
fact HC_PACKAGES "$packages"
failed=''
[ "$failed_count" = 0 ] || failed=$(systemctl list-units --state=failed --plain --no-legend --full 2>/dev/null) || true
fact HC_FAILED_UNITS "${failed//$'\n'/$'\t'}"
manifest=$G/current/manifest.json
if [ -f "$manifest" ]; then
  # Its sha256 was written at its commit (older generations: computed).
  sum=''
  [ -f "$manifest.sha256" ] && read -r sum < "$manifest.sha256"
  [ -n "$sum" ] || { sum=$(sha256sum < "$manifest"); sum=${sum%% *}; }
  fact HC_MANIFEST_SHA "$sum"
  [ "$sum" = "$known_manifest" ] || fact HC_MANIFEST "$(base64 -w0 < "$manifest")"
fi
[ -e "$P" ] && fact HC_PENDING yes
publish
# Managed paths whose record moved since the last commit, and the paths an
# apply that did not commit touched: what each is now.
paths=$G/current/lists/paths
state=$G/current/state
# The common case, cheaply: nothing pending, and every record as the commit left it.
if ! { [ -f "$state" ] && [ -f "$paths" ] && ! [ -e "$P" ] && records_unmoved "$paths" "$state" ${locked:+"$R$probe_records"}; }; then
  work=$(mktemp -d)
  [ -f "$paths" ] || paths=/dev/null
  [ -f "$state" ] || state=/dev/null
  { cat "$paths"; cat "$P" 2>/dev/null || true; } | sort -zu | stat_records | sort -z > "$work/now"
  sort -z "$state" | comm -z -3 "$work/now" - | sed -z 's/^\t//' | record_paths | sort -zu > "$work/moved"
  if [ -s "$work/moved" ]; then
    inspect "$work/live" < "$work/moved"
    cat "${created_dirs_files[@]/#/"$R"}" 2>/dev/null | sort -zu | comm -z -12 "$work/moved" - > "$work/created" || true
    fact HC_MOVED "$(base64 -w0 < "$work/moved")"
    fact HC_MOVED_FOUND "$(base64 -w0 < "$work/live.found")"
    fact HC_MOVED_SUMS "$(base64 -w0 < "$work/live.sums")"
    fact HC_MOVED_CREATED "$(base64 -w0 < "$work/created")"
  fi
  rm -rf "$work"
fi
# Status 0 whatever the last test said, without exit: the lock's shell runs the probe in itself (lock.bash).
true
