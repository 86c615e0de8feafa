#!/usr/bin/env bash
# Stage what a lent GPU machine lacks, in folders git ignores (.git/info/exclude): the piano-midi.de MIDI
# files (.gpu/piano-midi-de, 9 MB; the machine has no ../shared) and the wheels its Python lacks (.whl, 25 MB:
# datasets, music21 with its corpus, symusic and their needs). Then one device call runs the whole job:
#
#   run(carry=[".whl", ".gpu"], timeout_s=600, command=
#     "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
#      .whl/*.whl && export PYTHONPATH=/tmp/site || exit; python3 recipes/gpu/train_h200.py --out $OUT")
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info
for folder in /.whl/ /.gpu/; do grep -qxF "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude; done
mkdir -p .gpu
rm -rf .gpu/piano-midi-de && cp -r ../shared/corpora/piano-midi-de .gpu/piano-midi-de
version() { .venv/bin/python -m pip show "$1" | awk '/^Version/ {print $2}'; }
wheels=()
for name in datasets dill multiprocess music21 chardet jsonpickle more-itertools webcolors symusic platformdirs pySmartDL; do
    wheels+=("$name==$(version "$name")")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${wheels[@]}"
du -sh .gpu .whl
