#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's Chromium (headless report tests), a Java runtime
# (PySpark) and nginx (the NLP throttling proxy). Installs only what is missing, and only when it can (root with
# apt); otherwise says what to install.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's nginx may start its default site on port 80 where an init system lets it; aiforge runs its own
    # nginx per proxy (`aiforge nlp proxy`), so stop the package's instance if it came up.
    if [ -s /run/nginx.pid ]; then nginx -s quit 2>/dev/null || true; fi
else
    echo "Please install these system packages: ${missing[*]} (the browser/Spark/nginx tests need them)" >&2
fi
