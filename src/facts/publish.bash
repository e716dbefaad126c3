# publish.bash: the publish function, run by the probe and after an apply's
# commit. It prints the public material layers' units made on the machine
# (HC_PUBLIC:NAME=base64), and the machine's global addresses; the reader
# checks names and contents (public.ts).
#
# Data in front: public_dir.
# shellcheck shell=bash disable=SC2154

publish() {
  local file addresses='' address
  for file in "$R$public_dir"/*; do
    [ -f "$file" ] && printf 'HC_PUBLIC:%s=%s\n' "${file##*/}" "$(head -c 65537 "$file" | base64 -w0)"
  done
  if command -v ip >/dev/null; then
    while read -r _ _ _ address _; do addresses+="${address%/*} "; done < <(ip -o addr show scope global 2>/dev/null)
  fi
  printf 'HC_ADDRESSES=%s\n' "$addresses"
}
