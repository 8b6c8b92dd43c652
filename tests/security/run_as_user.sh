#!/usr/bin/env bash
# Run the security suite as an unprivileged user (uid 65534 by default), as a cluster job or a
# developer's shell would start the sandbox: from a copy of the working tree that user can read,
# with an environment built from the system's Python (the project's own may live under a home
# directory the user cannot enter). Must be started by root; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
uid="${SWEREPAIR_TEST_UID:-65534}"
[ "$(id -u)" = 0 ] || { echo "run_as_user.sh: start it as root (it drops to uid $uid)" >&2; exit 2; }
python=/usr/bin/python3
venv=/tmp/swerepair-user-venv-$(cat pyproject.toml constraints/cpu.txt | cksum | cut -d' ' -f1)
if [ ! -e "$venv/.complete" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q -c constraints/cpu.txt "setuptools>=77" wheel gymnasium numpy rapidfuzz pytest \
    pytest-timeout hypothesis
  touch "$venv/.complete"
fi
work=$(mktemp -d /tmp/swerepair-user-tree.XXXXXX)
home=$(mktemp -d /tmp/swerepair-user-home.XXXXXX)
trap 'rm -rf "$work" "$home"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work"
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$work" >/dev/null
chmod -R a+rX "$work" "$venv"
chmod 755 "$work"
chown "$uid:$uid" "$home"
cd "$work"
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups \
  env -i PATH=/usr/bin:/bin HOME="$home" SWEREPAIR_CACHE="$home/cache" CI="${CI:-}" LANG=C.UTF-8 \
  SWEREPAIR_SECURITY_TABLE="${SWEREPAIR_SECURITY_TABLE:-}" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/security -m "not slow and not docker" "$@"
