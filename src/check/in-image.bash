# in-image.bash: run in a throwaway copy of a sandbox image (systemd-nspawn --volatile=overlay: nothing it
# writes outlasts it), with a machine's built tree bound read-only at $1. Copies the tree in place, so that
# what units and configurations name is there, then checks; the arguments after the tree say what:
#   unit:PATH_OR_NAME        systemd-analyze verify, all of them in one run
#   package:NAME             a package the machine installs: said when the image lacks it
#   nginx:CONF:ETC           nginx -t of CONF ("" for nginx's own), with ETC ("" for none) bound on /etc/nginx,
#                            files the machine makes at run time stood in for
# Each part's output follows a line "@@homecloud-check PART [ARGUMENT] STATUS" (verify, package, nginx).
# The arguments are file names: data, never code.
set -u
export LC_ALL=C.UTF-8
tree=$1
shift
cp -a "$tree/." / || exit 1
units=() packages=() nginx=()
for item in "$@"; do
  case $item in
    unit:*) units+=("${item#unit:}") ;;
    package:*) packages+=("${item#package:}") ;;
    nginx:*) nginx+=("${item#nginx:}") ;;
  esac
done

if ((${#units[@]})); then
  output=$(systemd-analyze verify --man=no -- "${units[@]}" 2>&1)
  status=$?
  printf '@@homecloud-check verify %s\n%s\n' "$status" "$output"
fi

for package in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' -- "$package" 2>/dev/null) != installed ]]; then
    printf '@@homecloud-check package %s\n' "$package"
  fi
done

# What the machine makes at run time (certificates and keys in credentials or state directories, the
# directory of the PID file) is not in the tree: each file nginx names as missing, outside the tree, gets a
# stand-in (a throwaway certificate and its key) and the test runs again, so that it goes on to the rest.
stand_in_pair() {
  [[ -e /run/homecloud-check/cert.pem ]] && return 0
  mkdir -p /run/homecloud-check
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=homecloud-check \
    -keyout /run/homecloud-check/key.pem -out /run/homecloud-check/cert.pem 2> /dev/null
}
missing_pattern='(cannot load certificate( key)?|SSL_CTX_load_verify_locations|open\(\)) ?\(?"([^"]+)"'
nginx_test() {
  local output status stood=''
  for _ in 1 2 3 4 5 6 7 8; do
    if [[ -n $etc ]]; then
      # As the unit sees it: its directory bound on /etc/nginx, in a mount namespace of its own.
      # shellcheck disable=SC2016 # the inner shell expands them
      output=$(unshare --mount -- sh -c 'mount --bind -- "$1" /etc/nginx && shift && exec /usr/sbin/nginx "$@"' sh "$etc" "${arguments[@]}" 2>&1)
    else
      output=$(/usr/sbin/nginx "${arguments[@]}" 2>&1)
    fi
    status=$?
    ((status == 0)) && break
    [[ $output =~ $missing_pattern ]] || break
    local kind=${BASH_REMATCH[1]} file=${BASH_REMATCH[3]}
    if [[ $file != /* || -e $tree$file || -e $file && $kind == 'open()' ]]; then break; fi
    mkdir -p "${file%/*}"
    case $kind in
      'open()') ;;
      'cannot load certificate key') stand_in_pair && cp /run/homecloud-check/key.pem "$file" ;;
      *) stand_in_pair && cp /run/homecloud-check/cert.pem "$file" ;;
    esac
    stood+="stand-in $file"$'\n'
  done
  printf '@@homecloud-check nginx %s %s\n%s%s\n' "$status" "$spec" "$stood" "$output"
}
for spec in "${nginx[@]}"; do
  conf=${spec%%:*} etc=${spec#*:}
  arguments=(-t -q -e stderr)
  [[ -n $conf ]] && arguments+=(-c "$conf")
  nginx_test
done
exit 0
