#!/usr/bin/env bash
# Installs everything the whole test suite needs, then runs it: the README's test
# command, and what CI runs. Arguments go to pytest.
#
# - Debian packages: Chromium for the browser tests (driven by Playwright for
#   Python; never `playwright install`, which downloads a browser of its own) and
#   Node.js with npm for axe-core and the test OpenID Connect provider. Installed
#   with apt-get when missing (as root, or through sudo).
# - npm packages, from the lock files: tests/web (axe-core), tests/oidc (oidc-provider).
# - Python: a venv in .venv with the package and its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "installing Debian packages: ${missing[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for dir in tests/web tests/oidc; do
    if [ -f "$dir/package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --silent)
    fi
done

python3.11 -m venv .venv
.venv/bin/pip install --quiet -e ".[test]"

# pytest exits 5 when it collected no test: a broken suite, never a pass.
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"
