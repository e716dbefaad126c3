#!/usr/bin/env bash
# Install what homecloud's build and tests need on this host: npm packages and
# the Debian tools homecloud shells out to. Safe to run again; quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v m4 >/dev/null || need+=(m4)
command -v rsync >/dev/null || need+=(rsync)
command -v shellcheck >/dev/null || need+=(shellcheck)
# Sandbox machines (the end-to-end tests and `homecloud sandbox`).
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
command -v ip >/dev/null || need+=(iproute2)
command -v ssh >/dev/null || need+=(openssh-client)
command -v losetup >/dev/null || need+=(mount)
# The base layer's end-to-end test audits the machines' sshd with it.
command -v ssh-audit >/dev/null || need+=(ssh-audit)
# The public material unit test makes certificates with it.
command -v openssl >/dev/null || need+=(openssl)
# The check command's test reads its JUnit output with it.
command -v xmllint >/dev/null || need+=(libxml2-utils)
# The scale benchmark reads the CLI's peak memory from GNU time (npm run bench -- scale).
[[ -x /usr/bin/time ]] || need+=(time)
# The Ansible comparison's unit test renders its Jinja2 templates as Ansible would (the bench itself installs ansible).
/usr/bin/python3 -c 'import jinja2' 2>/dev/null || need+=(python3-jinja2)

if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "homecloud needs: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
