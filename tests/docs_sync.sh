#!/usr/bin/env bash
# docs/kernels.md is generated from the registry; fail if it has drifted.
set -euo pipefail
HB=$1
ROOT=$2
if diff -u "$ROOT/docs/kernels.md" <("$HB" kernels --markdown); then
  echo "docs/kernels.md matches the registry"
else
  echo "docs/kernels.md is stale: run  build/hyperbatch kernels --markdown > docs/kernels.md"
  exit 1
fi
