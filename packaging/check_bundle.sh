#!/usr/bin/env bash
# Build the Linux bundle, start it under Xvfb, launch a script through the bundle's CLI entry and
# find the run in the history. Used by `make bundle-check` (and so by CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=$(mktemp -d)
trap 'kill ${gui:-} ${xvfb:-} 2>/dev/null || true; rm -rf "$out"' EXIT

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$out/dist" --workpath "$out/build" packaging/prismq-desktop.spec
echo "bundle built in $(( $(date +%s) - start )) s: $(du -sh "$out/dist/prismq-desktop" | cut -f1)"
app="$out/dist/prismq-desktop/prismq-desktop"
home="$out/home"

d=99
while [[ -e /tmp/.X11-unix/X$d || -e /tmp/.X$d-lock ]]; do d=$((d + 1)); done
Xvfb ":$d" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
for _ in $(seq 50); do [[ -e /tmp/.X11-unix/X$d ]] && break; sleep 0.1; done
DISPLAY=":$d" QT_QPA_PLATFORM=xcb "$app" --data-dir "$home" >"$out/gui.log" 2>&1 &
gui=$!
sleep 5
kill -0 "$gui" || { echo "the bundled window exited early:"; cat "$out/gui.log"; exit 1; }

printf 'import sys\nprint("hello from", sys.executable)\n' > "$out/hello.py"
"$app" --data-dir "$home" run "$out/hello.py" | tee "$out/run.txt"
grep -q "hello from" "$out/run.txt"
! grep -q "$out/dist" "$out/run.txt"  # a real Python ran it, not the bundle's own executable
# fire-and-forget from the frozen app: the detached process is the bundle's own EXE (never -m)
cli="$out/dist/prismq-desktop/prismq-desktop-cli"
"$cli" --data-dir "$home" run --pattern fire_and_forget "$out/hello.py" | tee "$out/ff.txt"
grep -q "started in the background" "$out/ff.txt"
for _ in $(seq 100); do
  "$cli" --data-dir "$home" history --json > "$out/history.json"
  [[ $("$PY" -c 'import json,sys; print(sum(r["name"] == "hello.py" and r["outcome"] == "succeeded" for r in json.load(open(sys.argv[1]))))' "$out/history.json") -ge 2 ]] && break
  sleep 0.2
done
"$PY" - "$out/history.json" <<'PYEOF'
import json, sys
runs = json.load(open(sys.argv[1]))
ok = [r for r in runs if r["name"] == "hello.py" and r["outcome"] == "succeeded"]
assert len(ok) >= 2, runs  # the foreground run and the fire-and-forget one
print(f"bundle check: both runs are in the history ({len(runs)} run(s))")
PYEOF
kill -TERM "$gui"
wait "$gui" || true
echo "bundle check passed"
