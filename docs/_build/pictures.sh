#!/usr/bin/env bash
# Regenerate every committed picture under docs/ (`make pictures`). Needs the demo extras; the page's
# screenshot needs chromium (apt-get install chromium) and is skipped without it.
set -euo pipefail
GRADKIT=${GRADKIT:-.venv/bin/gradkit}
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$GRADKIT" schedules --out docs/schedules.png
"$GRADKIT" race --out docs/race --html "$tmp/race.html"
"$GRADKIT" race -l saddle -o 'SGD=sgd(learning_rate=0.01)' -o 'Momentum=sgd(momentum=0.9, learning_rate=0.01)' \
    --out "$tmp/saddle"
"$GRADKIT" race -l narrow_valley -o 'SGD=sgd(learning_rate=0.035)' -o 'Momentum=sgd(momentum=0.9, learning_rate=0.035)' \
    -o 'RMSProp=rmsprop(learning_rate=0.035)' -o 'Adam=adam(learning_rate=0.035)' --out "$tmp/valley"
mkdir -p docs/race/closeups docs/train
cp "$tmp/saddle/race_saddle.png" "$tmp/valley/race_narrow_valley.png" docs/race/closeups/
"$GRADKIT" train --no-progress --out "$tmp/train"
cp "$tmp/train/curves.png" docs/train/curves.png
"$GRADKIT" train --no-progress --train-size 100 --epochs 60 --lr 5e-3 --augment none \
    --sweep weight_decay=0,3,0 --sweep l2=0,0,0.03 --out "$tmp/overfitting"
cp "$tmp/overfitting/curves.png" docs/train/overfitting.png
"$PY" examples/overfitting_polynomial.py docs/train/overfitting_polynomial.png
if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
        --window-size=1100,620 --screenshot=docs/race/page.png "file://$tmp/race.html#step=end" 2>/dev/null
else
    echo "no chromium: docs/race/page.png not refreshed" >&2
fi
echo "pictures regenerated under docs/"
