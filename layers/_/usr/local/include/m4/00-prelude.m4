m4_divert(-1)
# homecloud's m4 prelude, read before every template (m4 -P --fatal-warnings).
# Quotes are [ and ]; comments are off so that macros on `#' lines expand.
m4_changequote([,])
m4_changecom()

# m5_assert([NAME]): the value of fact NAME; the render fails when it is unset.
m4_define([m5_assert], [m4_ifdef([$1], [$1],
  [m4_errprint(m4___file__:m4___line__: [required fact $1 is not set: add it to facts/]m4_defn([ENV_MACHINE])[.json or to a layer's usr/local/doc/examples/*.env
])m4_m4exit([1])])])

# m5_or([NAME], default): the value of fact NAME, or default when it is unset or empty.
m4_define([m5_or], [m4_ifelse(m4_ifdef([$1], [m4_defn([$1])]), [], [$2], [$1])])

# m5_join(sep, items...): the non-empty items, separated by sep.
m4_define([m5_join], [m4_ifelse([$#], [1], [], [$#], [2], [[$2]],
  [$2], [], [$0([$1], m4_shift(m4_shift($@)))],
  [[$2]m5_join_([$1], m4_shift(m4_shift($@)))])])
m4_define([m5_join_], [m4_ifelse([$#$2], [2], [],
  [m4_ifelse([$2], [], [], [[$1$2]])m4_ifelse([$#], [2], [], [$0([$1], m4_shift(m4_shift($@)))])])])

# m5_for([VAR], body, items...): body once per item with VAR set to it;
# nothing for no items or one empty item.
m4_define([m5_for], [m4_ifelse([$#], [2], [], [$#$3], [3], [], [m5_for_($@)])])
m4_define([m5_for_], [m4_pushdef([$1], [$3])$2[]m4_popdef([$1])m4_ifelse([$#], [3], [],
  [$0([$1], [$2], m4_shift(m4_shift(m4_shift($@))))])])

# m5_argn(n, items...): the nth item (from 1), empty past the end.
m4_define([m5_argn], [m4_ifelse(m4_eval([$1 < 1 || $# < 2]), [1], [],
  [$1], [1], [[$2]], [$0(m4_decr([$1]), m4_shift(m4_shift($@)))])])

# m5_clamp(lo, x, hi): x limited to the range lo..hi (integers).
m4_define([m5_clamp], [m4_ifelse(m4_eval([($2) < ($1)]), [1], [$1],
  m4_eval([($2) > ($3)]), [1], [$3], [$2])])

# Public material machines publish (a certificate, a public key, their
# addresses: see homecloud's README), read by the build from every machine:
# m5_public([name]): every machine's, one after another by machine name.
m4_define([m5_public], [m4_ifdef([HOMECLOUD_PUBLIC//$1], [m4_defn([HOMECLOUD_PUBLIC//$1])])])
# m5_public_of(machine, [name]): one machine's; empty until it published it.
m4_define([m5_public_of], [m4_ifdef([HOMECLOUD_PUBLIC/$1/$2], [m4_defn([HOMECLOUD_PUBLIC/$1/$2])])])
# m5_public_lines([name]): the lines of every machine's, as items (m5_for).
m4_define([m5_public_lines], [m4_ifdef([HOMECLOUD_PUBLIC_LINES//$1], [m4_indir([HOMECLOUD_PUBLIC_LINES//$1])])])
# m5_publishers([name]): the machines that published it, as items (m5_for).
m4_define([m5_publishers], [m4_ifdef([HOMECLOUD_PUBLISHERS//$1], [m4_indir([HOMECLOUD_PUBLISHERS//$1])])])

# m5_esyscmd(command): the output of a bash command run with pipefail from
# the repository root; a failing command fails the render with its status.
# A secret or probe fact is its value in the command, and stays literal in
# the output (homecloud keeps such values out of m4 as placeholders, with
# the values in HOMECLOUD_LITERAL_<n>, longest first in HOMECLOUD_LITERALS).
m4_define([m5_esyscmd], [m4_esyscmd([exec bash -c 'command=$(cat)
printf -v open "\357\267\220"; printf -v close "\357\267\221"
for n in ${HOMECLOUD_LITERALS-}; do literal=HOMECLOUD_LITERAL_$n; command=${command//"$open$n$close"/"${!literal}"}; done
if [ -z "${HOMECLOUD_LITERALS-}" ]; then exec bash -o pipefail -c "$command"; fi
output=$(bash -o pipefail -c "$command"; status=$?; printf x; exit "$status")
status=$?
output=${output%x}
for n in ${HOMECLOUD_LITERALS-}; do literal=HOMECLOUD_LITERAL_$n; output=${output//"${!literal}"/"$open$n$close"}; done
printf "%s" "$output"
exit "$status"' <<'M5_COMMAND'
$1
M5_COMMAND
])[]m5_esyscmd_check_([$1])])
m4_define([m5_esyscmd_check_], [m4_ifelse(m4_sysval, [0], [],
  [m4_errprint(m4___file__:m4___line__: [m5_esyscmd failed with exit status ]m4_sysval[: $1
])m4_m4exit([1])])])
m4_divert(0)m4_dnl
