#!/usr/bin/env bash
# Build a self-contained one-folder bundle in dist/understudy with PyInstaller.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install 'pyinstaller>=6.10'
.venv/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/understudy.spec
echo "Built dist/understudy/understudy"
