#!/usr/bin/env bash
# From a fresh clone to a dataset: set up, then build configs/quickstart.yaml with the embedded SmolLM2 model
# (no API key, no network beyond the package registry), then show what was built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m longwriter_data build --config configs/quickstart.yaml
echo
echo "Run directory: data/runs/quickstart (jobs.jsonl, steps.jsonl, report.json, dataset/)"
.venv/bin/python - <<'PY'
import datasets
train = datasets.load_from_disk("data/runs/quickstart/dataset")["train"]
for row in train:
    prompt = " ".join(row["messages"][0]["content"].split())
    print(f"- {row['id']}: {row['word_count']} words, {row['lang']}: {prompt[:70]}...")
PY
