#!/usr/bin/env bash
# A compare grid on a Linux x86-64 machine with no network and no Node (the lent GPU machine's
# 16 CPU cores; the grid trains on wasm). Unpacks the tarball made by scripts/pack-compare.sh
# (Node, the bundled hilo CLI, models/hilo-base, recipes/compare/, the tasks' data), runs
#   hilo compare GRID --jobs JOBS
# (each cell its own one-thread process), and copies into OUTDIR what is worth keeping: the
# summary (summary.md/.json, results.jsonl, report.html, plot-*.svg/png) and each run's small files
# (results.json, train.log, metrics.jsonl, plan.json, probe.json, recipe.json; no weights), with
# env.txt (machine, date, command, wall time). A grid still running after GRID_TIMEOUT seconds is
# stopped with SIGINT (running cells save a checkpoint) and summarised as far as it got; carry that
# OUTDIR to the next machine and name it in RESUME_FROM to run only the cells it lacks (the
# bundle and the runs sit at fixed paths, so the recipes the finished cells recorded still match).
#   device-compare.sh [TARBALL] [OUTDIR]   defaults: .hilo-cache/hilo-compare.tar.xz (or the folder
#                                          this script sits in, when already unpacked), $OUT or ./compare-results
# Env: GRID (recipes/compare/cpu.yaml), JOBS (8), GRID_TIMEOUT (500: with unpacking and copying, under the device tool's 600 s), OVERRIDES (key=value ... for
#   every run, e.g. "train.max_steps=10" for a smoke test), RESUME_FROM (an earlier OUTDIR).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TARBALL=${1:-}
OUTDIR=${2:-${OUT:-$PWD/compare-results}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ -x "$HERE/node/bin/node" ] && [ -z "$TARBALL" ]; then
  D=$HERE
else
  TARBALL=${TARBALL:-$PWD/.hilo-cache/hilo-compare.tar.xz}
  WORK=/tmp/hilo-compare-work
  rm -rf "$WORK" && mkdir -p "$WORK"
  tar -C "$WORK" -xJf "$TARBALL" || { echo "cannot unpack $TARBALL" >&2; exit 2; }
  D=$WORK/hilo-compare
fi
NODE=$D/node/bin/node
if ! "$NODE" --version >/dev/null 2>&1; then export LD_LIBRARY_PATH=$D/node/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
"$NODE" --version >/dev/null || { echo "the carried node does not run here" >&2; exit 2; }
# (read whole first: with pipefail, grep -q closing the pipe early would fail ldconfig's side)
LIBS=$({ ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null)
if ! grep -q "^[[:space:]]*libopenblas.so.0 " <<< "$LIBS" && [ -e "$D/hostlibs/openblas/libopenblas.so.0" ]; then
  export LD_LIBRARY_PATH=$D/hostlibs/openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "no libopenblas.so.0 on this machine: using the carried one"
fi
export HILO_FONT_DIRS=$D/fonts
GRID=${GRID:-recipes/compare/cpu.yaml}
JOBS=${JOBS:-8}
RUNS=/tmp/hilo-compare-runs
rm -rf "$RUNS" && mkdir -p "$RUNS"
if [ -n "${RESUME_FROM:-}" ] && [ -d "$RESUME_FROM/runs" ]; then
  cp -r "$RESUME_FROM/runs" "$RUNS/" && echo "resuming from $RESUME_FROM: $(find "$RUNS/runs" -name results.json | wc -l) cells with results"
fi
read -r -a EXTRA <<< "${OVERRIDES:-}"
CMD=(hilo compare "$GRID" --jobs "$JOBS" "${EXTRA[@]}")
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"; echo "load: $(cat /proc/loadavg)"
  grep -m1 'model name' /proc/cpuinfo; free -g | sed -n 2p
  echo "node: $("$NODE" --version)"; echo "command: ${CMD[*]}"
} | tee "$OUTDIR/env.txt"

start=$(date +%s)
(cd "$D" && timeout -s INT -k 30 "${GRID_TIMEOUT:-500}" "$NODE" src/cli/hilo.mjs compare "$GRID" --jobs "$JOBS" --output-dir "$RUNS" "${EXTRA[@]}") 2>&1 | tee "$OUTDIR/compare.log"
status=${PIPESTATUS[0]}
echo "exit: $status; wall: $(( $(date +%s) - start )) s" | tee -a "$OUTDIR/env.txt"
# Stopped before it summarised (killed after the timeout's grace): write the summary from what is on disk.
[ -e "$RUNS/summary.md" ] || (cd "$D" && "$NODE" src/cli/hilo.mjs compare "$GRID" --output-dir "$RUNS" --summary-only "${EXTRA[@]}") 2>&1 | tee -a "$OUTDIR/compare.log"

cp "$RUNS"/{summary.md,summary.json,results.jsonl,report.html} "$RUNS"/plot-* "$OUTDIR/" 2>/dev/null
(cd "$RUNS" && find runs \( -name results.json -o -name train.log -o -name metrics.jsonl -o -name plan.json -o -name probe.json -o -name recipe.json \) -print0 \
  | tar --null -T - -cf -) | tar -C "$OUTDIR" -xf -
echo "results in $OUTDIR"
exit $status
