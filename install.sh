#!/usr/bin/env bash
# Set up budgetnet on this machine: ./install.sh (the package) or ./install.sh --dev (and
# what the tests need: pytest, hypothesis, nbclient, psycopg2, torchvision's and timm's models, a
# PostgreSQL server binary).
# torch comes from the CPU pin torch==2.13.0 only where no torch is installed, so a GPU
# machine keeps its CUDA build and a fresh machine never downloads a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")"
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0"
if [ "${1:-}" = "--dev" ]; then
    python -m pip install --quiet -e ".[dev]"
    # torchvision's models are a test dependency. 0.28.0 pairs with the torch==2.13.0 pin (a newer
    # one would pull a newer, CUDA torch); a machine that has torchvision (a GPU box) keeps its own.
    python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchvision') is None)" \
        || python -m pip install --quiet --no-deps "torchvision==0.28.0"
    # timm's models are a test dependency too, --no-deps so the torch pin holds (huggingface_hub
    # below 1.0 imports without the extra HTTP clients that 1.x needs).
    python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('timm') is None)" \
        || python -m pip install --quiet --no-deps "timm==1.0.31" "huggingface_hub==0.36.2" "safetensors" "pyyaml"
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else
            echo "install.sh: no PostgreSQL server found; the multi-worker tests will be skipped" >&2
        fi
    fi
else
    python -m pip install --quiet -e .
fi
command -v pyenv >/dev/null && pyenv rehash || true
