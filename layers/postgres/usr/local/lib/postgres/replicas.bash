# shellcheck shell=bash
# homecloud postgres layer: what its two generators share. Sourced after generator.bash.

# replicas_of MACHINE CLUSTER: the replicas of that cluster in the fleet (machines that offered
# postgres-replica-of MACHINE CLUSTER <their cluster>), a line each: "<machine> <their cluster>". What a
# machine offered is data: only names of the expected shape are taken.
replicas_of() {
  local member value
  local -a members
  mapfile -t members < <(fleet_members)
  for member in "${members[@]}"; do
    [[ $member =~ ^[a-z0-9][a-z0-9_-]{0,30}$ ]] || continue
    while read -r value; do
      if [[ $value =~ ^([^ ]+)\ ([a-z0-9][a-z0-9_-]{0,62})\ ([a-z0-9][a-z0-9_-]{0,62})$ && ${BASH_REMATCH[1]} == "$1" && ${BASH_REMATCH[2]} == "$2" ]]; then
        printf '%s %s\n' "$member" "${BASH_REMATCH[3]}"
      fi
    done < <(fleet_offers "$member" postgres-replica-of)
  done
}
