#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's Chromium (headless report tests) and a Java runtime
# (PySpark). Installs only what is missing, and only when it can (root with apt); otherwise says what to install.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "Please install these system packages: ${missing[*]} (the browser/Spark tests need them)" >&2
fi
