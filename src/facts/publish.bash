# publish.bash: the publish function, run by the probe and after an apply's
# commit. It prints the public material layers' units made on the machine
# (HC_PUBLIC:NAME=base64), and the kernel's tables of the machine's addresses;
# the reader picks the global ones and checks names and contents (addresses.ts,
# public.ts).
#
# Data in front: public_dir.
# shellcheck shell=bash disable=SC2154

publish() {
  local file addresses='' address fib='' inet6=''
  for file in "$R$public_dir"/*; do
    [ -f "$file" ] && printf 'HC_PUBLIC:%s=%s\n' "${file##*/}" "$(head -c 65537 "$file" | base64 -w0)"
  done
  # The addresses from the kernel's tables, read without a process (a probe with nothing to do costs mostly
  # its processes) and sent as they are, a tab for each newline (neither file has one); the operator's side
  # picks the global ones (addresses.ts). A routing table larger than a small fleet's, or none to read: ip.
  [ -r /proc/net/fib_trie ] && { IFS= read -r -d '' fib < /proc/net/fib_trie || true; }
  if [ -n "$fib" ] && [ "${#fib}" -le 262144 ]; then
    [ -r /proc/net/if_inet6 ] && { IFS= read -r -d '' inet6 < /proc/net/if_inet6 || true; }
    printf 'HC_FIB_TRIE=%s\nHC_IF_INET6=%s\n' "${fib//$'\n'/$'\t'}" "${inet6//$'\n'/$'\t'}"
    return
  fi
  if command -v ip >/dev/null; then
    while read -r _ _ _ address _; do addresses+="${address%/*} "; done < <(ip -o addr show scope global 2>/dev/null)
  fi
  printf 'HC_ADDRESSES=%s\n' "$addresses"
}
