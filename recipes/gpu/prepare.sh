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
names=(datasets dill multiprocess music21 chardet jsonpickle more-itertools webcolors symusic platformdirs pySmartDL)
# The device's transformers was 5.17 when last seen, older than maia's pin. With WITH_TRANSFORMERS=1 its wheel
# travels too (about 12 MB: the 64 MiB limit of a call then leaves no room for music21's 20 MB wheel, so
# also set WITHOUT_MUSIC21=1 and train on piano-midi.de alone).
[ "${WITH_TRANSFORMERS:-0}" = 1 ] && names+=(transformers)
[ "${WITHOUT_MUSIC21:-0}" = 1 ] && names=("${names[@]/music21}")
for name in "${names[@]}"; do
    [ -n "$name" ] || continue
    wheels+=("$name==$(version "$name")")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${wheels[@]}"
du -sh .gpu .whl
