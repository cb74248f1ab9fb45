#!/usr/bin/env bash
# Renders every kustomize overlay under deploy/overlays with `kubectl kustomize` into $1 (default: a temporary folder)
# and fails on the first one that does not build. The rendered objects are then checked against the Kubernetes API
# schema and the service's own configuration by the deployment tests (tests/ParaphraseService.Api.Tests/Deployment),
# which render the same overlays.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-$(mktemp -d)}
mkdir -p "$out"
status=0
for overlay in deploy/overlays/*/; do
  name=$(basename "$overlay")
  if kubectl kustomize "$overlay" > "$out/$name.yaml.tmp" 2> "$out/$name.err"; then
    mv "$out/$name.yaml.tmp" "$out/$name.yaml"; rm -f "$out/$name.err"
    echo "deploy: $overlay renders: $(grep -c '^kind:' "$out/$name.yaml") objects ($(grep '^kind:' "$out/$name.yaml" | sed 's/kind: //' | sort | paste -sd, -))"
  else
    echo "deploy: $overlay does not render:" >&2
    sed 's/^/  /' "$out/$name.err" >&2
    status=1
  fi
done
exit $status
