# shellcheck shell=bash disable=SC2034,SC2154
# homecloud base layer: what the layers' build-time generators share (docs/FORMAT.md section 7). Sourced
# after lib.bash by a generator that has set:
#   out     its output directory, laid out like /
#   failed  0; refuse sets it to 1, and the generator exits with it at the end
# Each function prints the line the build reads on stdout: an output and its declaration, a value the
# declaration takes (unique in the repository), or a machine this machine hosts.

# refuse FILE MESSAGE: a declaration that cannot work; the generator goes on with the others, then fails.
refuse() {
  echo "$1: $2" >&2
  failed=1
}

# emit PATH DECLARATION: standard input becomes the output PATH (absolute on the target).
emit() {
  mkdir -p "$out${1%/*}"
  cat > "$out$1"
  printf '%s\t%s\n' "$1" "$2"
}

# emit_link PATH TARGET DECLARATION: a symbolic link.
emit_link() {
  mkdir -p "$out${1%/*}"
  ln -s "$2" "$out$1"
  printf '%s\t%s\n' "$1" "$3"
}

# enable UNIT TARGET DECLARATION: UNIT (of /usr/local/lib/systemd/system) wanted by TARGET.
enable() {
  emit_link "/usr/local/lib/systemd/system/$2.wants/$1" "../$1" "$3"
}

# claim KIND VALUE DECLARATION: the declaration takes VALUE (an address, a subnet), which no other
# declaration in the repository may take; the build names both when one does.
claim() {
  printf 'claim\t%s\t%s\t%s\n' "$1" "$2" "$3"
}

# hosted_machine NAME ADDRESS HOST_KEY DECLARATION: this machine hosts machine NAME (a container), which
# homecloud reaches through it at ADDRESS, checking the host key this machine keeps at HOST_KEY.
hosted_machine() {
  printf 'machine\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

# offer KEY VALUE DECLARATION: a value the other machines' fleet generators read (`# fleet:` generators,
# in HOMECLOUD_FLEET/<machine>/offers), such as the subnet behind this machine.
offer() {
  printf 'offer\t%s\t%s\t%s\n' "$1" "$2" "$3"
}

# IPv4 addresses as numbers, and back.
to_number() {
  local IFS=.
  # shellcheck disable=SC2086
  set -- $1
  echo $((($1 << 24) + ($2 << 16) + ($3 << 8) + $4))
}
to_address() {
  echo "$(($1 >> 24 & 255)).$(($1 >> 16 & 255)).$(($1 >> 8 & 255)).$(($1 & 255))"
}
ipv4='^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$'

# digest_number NAME: a number from the name's digest (32 bits), stable across builds and machines.
digest_number() {
  echo $((16#$(printf '%s' "$1" | sha256sum | cut -c1-8)))
}

# The fleet a `# fleet:` generator sees (HOMECLOUD_FLEET, FORMAT.md section 7). What the machines said is data:
# each caller checks it before it uses it.
# fleet_members: the members' names, a line each.
fleet_members() {
  local dir
  for dir in "${HOMECLOUD_FLEET:?}"/*/; do
    dir=${dir%/}
    printf '%s\n' "${dir##*/}"
  done
}
# fleet_offer MEMBER KEY: the first value MEMBER offered under KEY; fleet_offers: every one, a line each.
fleet_offer() {
  local key value
  while IFS=$'\t' read -r key value; do
    if [[ $key == "$2" ]]; then
      printf '%s\n' "$value"
      return 0
    fi
  done < "${HOMECLOUD_FLEET:?}/$1/offers"
  return 0
}
fleet_offers() {
  local key value
  while IFS=$'\t' read -r key value; do if [[ $key == "$2" ]]; then printf '%s\n' "$value"; fi; done < "${HOMECLOUD_FLEET:?}/$1/offers"
  return 0
}
# fleet_address MEMBER: how homecloud reaches it. fleet_public MEMBER NAME: the first line of its public NAME.
fleet_address() {
  local address=''
  read -r address < "${HOMECLOUD_FLEET:?}/$1/address" || true
  printf '%s\n' "$address"
}
fleet_public() {
  local line=''
  if [[ -f ${HOMECLOUD_FLEET:?}/$1/public/$2 ]]; then read -r line < "$HOMECLOUD_FLEET/$1/public/$2" || true; fi
  printf '%s\n' "$line"
}
# fleet_public_key MEMBER NAME: its public NAME, if that is a key's base64 body (an SSH key without its type).
fleet_public_key() {
  local line
  line=$(fleet_public "$1" "$2")
  if [[ $line =~ ^[A-Za-z0-9+/]{20,200}={0,2}$ ]]; then printf '%s\n' "$line"; fi
}
