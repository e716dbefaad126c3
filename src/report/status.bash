# status.bash: what `homecloud status` reads on a machine, in one round trip
# (statusScript, report/status.ts): the deploy's probe first (its lines are
# readProbe's: facts, failed units, the current manifest, moved paths), then
# a KEY=VALUE line per item below, with keys the probe never prints:
#   HC_STATUS_GENERATION=N         the current generation (no line: none)
#   HC_STATUS_META=KEY=VALUE       a line of its meta file (date, by, commit)
#   HC_STATUS_REBOOT=yes           /run/reboot-required exists
#   HC_STATUS_REBOOT_PACKAGE=NAME  a line of /run/reboot-required.pkgs
#   HC_STATUS_UPTIME=SECONDS       the first field of /proc/uptime
#   HC_STATUS_DISK=BLOCKS FREE AVAILABLE BLOCK-SIZE   of / (stat -f)
#   HC_STATUS_UPGRADES=N           installed packages apt has a newer version of
# What is read is data: printed, never run or expanded. Each value is one
# line as read (read stops at a newline), and the operator's side checks it.
#
# Data in front (statusScript): probe_script (probeScriptFor, probe.ts),
# generations_dir, lock_dir; root.bash comes before.
# shellcheck shell=bash disable=SC2154

set -u
export LC_ALL=C
# Pending upgrades: installed packages whose candidate version is newer than theirs (what apt list --upgradable
# lists). apt-cache policy lists each package's versions newest first, the installed one marked "***": a
# candidate above it is newer; a package that is not installed has no "***" line. It takes a fifth of a second
# (apt weighs every version it knows of; apt-get -s upgrade, most of a second), so the count is kept in the
# lock's directory (/run: until a reboot) with what it was made from: dpkg's status, apt's lists and
# configuration as stat sees them (size, times, inode); any change there makes it again. Started first and read
# last: when apt runs, it runs while the probe does. No line when apt-cache printed no package (it failed).
upgrades_file=$R$lock_dir/upgrades
exec {upgrades_fd}< <({
  inputs=$(stat -L -c '%n %s %Y %Z %i' -- "$R/var/lib/dpkg/status" "$R/var/lib/apt/lists" "$R"/var/lib/apt/lists/* \
    "$R/etc/apt" "$R"/etc/apt/* "$R"/etc/apt/*/*)
  kept=''
  [[ -f $upgrades_file ]] && IFS= read -r -d '' kept < "$upgrades_file"
  if [[ ${kept%%$'\n'*} =~ ^[0-9]+$ && ${kept#*$'\n'} == "$inputs"$'\n' ]]; then
    echo "${kept%%$'\n'*}"
    exit 0
  fi
  upgrades=$(dpkg-query -W -f='${Package}:${Architecture}\n' | xargs -r apt-cache policy | awk '
    /^[^ ]/ { packages++; candidate = ""; newer = 0 }
    /^  Candidate: / { candidate = $2 }
    /^     [^ ]/ && $1 == candidate { newer = 1 }
    /^ \*\*\* / && newer { upgrades++ }
    END { if (packages) print upgrades + 0 }')
  [[ -n $upgrades ]] || exit 0
  echo "$upgrades"
  # Written whole, then renamed: a status reading it at the same time sees the last one or this one.
  { [[ -d $R$lock_dir ]] || mkdir -m 0700 "$R$lock_dir"; } &&
    printf '%s\n%s\n' "$upgrades" "$inputs" > "$upgrades_file.$$" &&
    mv -f -- "$upgrades_file.$$" "$upgrades_file"
} 2> /dev/null)
# In a subshell: the probe ends with exit, and its variables stay its own.
(eval "$probe_script") < /dev/null
status() { printf 'HC_STATUS_%s=%s\n' "$1" "$2"; }
# At most `count` lines of a file, each as one value (a last line without its newline too).
status_lines() {
  local key=$1 file=$2 count=$3 line
  while ((count-- > 0)) && { IFS= read -r line || [[ -n $line ]]; }; do status "$key" "$line"; done < "$file"
}
G=$R$generations_dir
# Where the current link leads, without a process (readlink): the name of the directory cd -P lands in.
if cd -P -- "$G/current" 2> /dev/null && current=${PWD##*/} && cd / && [[ $current =~ ^[0-9]+$ ]]; then
  status GENERATION "$current"
  [[ -f $G/$current/meta ]] && status_lines META "$G/$current/meta" 32
fi
if [[ -e $R/run/reboot-required ]]; then
  status REBOOT yes
  [[ -f $R/run/reboot-required.pkgs ]] && status_lines REBOOT_PACKAGE "$R/run/reboot-required.pkgs" 64
fi
read -r uptime _ < /proc/uptime && status UPTIME "$uptime"
disk=$(stat -f -c '%b %f %a %S' -- "$R/" 2>/dev/null) && status DISK "$disk"
read -r -u "$upgrades_fd" upgrades && status UPGRADES "$upgrades"
exit 0
