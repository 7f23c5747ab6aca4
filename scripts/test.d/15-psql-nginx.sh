#!/usr/bin/env bash
# `picloud psql` is tested with the system's psql, and the deployment test puts Debian's
# nginx in front of two nodes. Installs both (postgresql-client, nginx, openssl) when missing.
set -euo pipefail

missing=()
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "15-psql-nginx: missing ${missing[*]}; install them (as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]})" >&2
    exit 1
fi
echo "15-psql-nginx: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
