#!/usr/bin/env bash
# ctest wrapper for bench/crosscheck_pytorch.py (Lethe vs PyTorch logits, both directions). Exits 77, which CMake
# registers as SKIP_RETURN_CODE, where Debian's python3 cannot import torch.
set -u
python=/usr/bin/python3
if ! [ -x "$python" ] || ! "$python" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "crosscheck: $python cannot import torch/numpy; skipped"
  exit 77
fi
if [ -z "${LETHE_BIN:-}" ]; then
  echo "crosscheck: set LETHE_BIN to the lethe binary" >&2
  exit 2
fi
exec "$python" "$(dirname "$0")/../bench/crosscheck_pytorch.py" --lethe "$LETHE_BIN" "$@"
