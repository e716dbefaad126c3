# lock.bash: the remote side of a lock (lockMachine, session.ts). Take the
# machine's lock (fd 9), saying who holds it while waiting; run the probe;
# then wait for one "run BYTES" line, whose script (the next BYTES bytes of
# input) runs detached and inherits the lock. End of input lets go.
# Prints, one a line: "waiting HOLDER" (another holds the lock), "lock-timeout",
# "locked", the probe's lines, "probed", then the run's output.
#
# Data in front (lockScript, session.ts):
#   holder        who takes the lock (command=... started=... host=... user=...)
#   wait_seconds  how long to wait for another holder
#   probe_script  the probe (probeScript, probe.ts), run in this shell
#   locked        says to the probe that it runs under the lock: it may write in lock_dir
#   lock_dir, machine_lock, lock_holder, state_dir
# shellcheck shell=bash disable=SC2154

set -u
[ -d "$R$lock_dir" ] || mkdir -m 0700 "$R$lock_dir"
exec 9>>"$R$machine_lock"
if ! flock -n 9; then
  printf 'waiting %s\n' "$(head -c 300 "$R$lock_holder" 2>/dev/null | tr -cd '[:alnum:]=:._@ -')"
  flock -w "$wait_seconds" 9 || { echo lock-timeout; exit 75; }
fi
printf '%s\n' "$holder" > "$R$lock_holder"
echo locked
# In this shell, not a subshell: a fork of this shell costs more than all the probe's own work.
{ eval "$probe_script"; } < /dev/null
echo probed
IFS=' ' read -r command bytes || exit 0
[ "$command" = run ] || exit 0
state=$R$state_dir
mkdir -p "$state"
head -c "$bytes" > "$state/run.sh"
out=$state/apply.out err=$state/apply.err
: > "$out"; : > "$err"
# setsid: a cut connection or a Ctrl-C where the deploy runs never stops the run halfway; it inherits the lock (fd 9).
setsid bash "$state/run.sh" >> "$out" 2>> "$err" < /dev/null &
pid=$!
tail -s 0.02 -n +1 -f --pid="$pid" "$out" || true
status=0
wait "$pid" || status=$?
cat "$err" >&2
exit "$status"
