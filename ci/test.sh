#!/usr/bin/env bash
# The test command of the README: installs what the build needs, then
# formatting, lints and every test of the workspace (real MPI ranks, a real
# one-node Slurm, a 3-node Slurm and hosts as network namespaces (ci/slurm-multi-up.sh,
# ci/netns-up.sh) — the latter need root), then report.html of a real run in
# headless Chromium (ci/browser-check.sh).
#
# With CI=true (.ci/run) a test that would skip for a missing program or
# missing root fails instead (crates/test-support/skip.rs); only what a
# CPU-only CI machine cannot have (a GPU) still skips.
#
# At the end it prints how long each test binary took (slowest first), the
# tests that took longest, every skip, and the time of each step and in all.
# cargo's own output is passed through unchanged; the exit code is cargo's.
set -euo pipefail
cd "$(dirname "$0")/.."

times_dir=$(mktemp -d)
started=$(date +%s)
step_name=""
step_started=$started
step_times=()

# Starts the step $1 (prints "== $1"), closing the one before.
step() {
  local now
  now=$(date +%s)
  [ -z "$step_name" ] || step_times+=("$((now - step_started))|$step_name")
  step_name=$1
  step_started=$now
  [ -z "$1" ] || echo "== $1"
}

# The report at the end, however the script ends (a failed step included).
summary() {
  local rc=$? t now
  step ""
  now=$(date +%s)
  if [ -s "$times_dir/tests.txt" ]; then
    echo
    cat "$times_dir/tests.txt"
  fi
  echo
  echo "== time per step"
  for t in "${step_times[@]}"; do
    printf '%7d s  %s\n' "${t%%|*}" "${t#*|}"
  done
  printf '%7d s  total (%dm%02ds), exit %d\n' "$((now - started))" \
    "$(((now - started) / 60))" "$(((now - started) % 60))" "$rc"
  rm -rf "$times_dir"
}
trap summary EXIT

# Passes `cargo test`'s output (stdout and stderr together) through line by
# line and times it: each test binary from its "Running"/"Doc-tests" line
# to the next one, each test from the previous result line of its binary to
# its own. Writes the tables to the file $1 at the end of the input. Never
# fails the pipe: a parse problem only loses the tables.
IFS= read -r -d '' TIMES_PY <<'PY' || true
import re, sys, time

out_path = sys.argv[1]
ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
running = re.compile(r"^\s+Running (.+?)(?: \((.+)\))?$")
doctests = re.compile(r"^\s+Doc-tests (\S+)$")
result = re.compile(
    r"^test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored;.*finished in ([\d.]+)s"
)
test_line = re.compile(r"^test (\S+) \.\.\. ?(ok|FAILED|ignored.*)?$")
long_running = re.compile(r"^test (\S+) has been running for over (\d+) seconds")

start = time.monotonic()
first_binary = None  # when the first test binary started (the build ended)
binaries = []  # dicts: name, start, end, result, passed, failed, ignored, libtest_s
tests = []  # (gap_s, at_s, test, binary, outcome)
skips = []
over = {}  # test -> seconds libtest said it had been running for
cur = None
last_result = 0.0
pending = None  # "test NAME ... " printed, its outcome not yet


def open_binary(name, now):
    global cur, last_result, first_binary, pending
    close_binary(now)
    if first_binary is None:
        first_binary = now
    cur = {"name": name, "start": now, "end": None, "result": "-",
           "passed": 0, "failed": 0, "ignored": 0, "libtest_s": None, "skips": 0}
    binaries.append(cur)
    last_result = now
    pending = None


def close_binary(now):
    if cur is not None and cur["end"] is None:
        cur["end"] = now


def finished(name, outcome, now):
    global last_result
    if cur is None:
        return
    tests.append((now - last_result, now - cur["start"], name, cur["name"], outcome))
    last_result = now


def label(desc, exe):
    stem = re.sub(r"-[0-9a-f]{16}$", "", exe.rsplit("/", 1)[-1]) if exe else ""
    if desc.startswith("unittests") and stem:
        return f"{stem} ({desc})"
    return desc


def parse(line, now):
    global pending
    m = running.match(line)
    if m:
        return open_binary(label(m.group(1), m.group(2)), now)
    m = doctests.match(line)
    if m:
        return open_binary(f"doc-tests {m.group(1)}", now)
    m = result.match(line)
    if m and cur is not None:
        cur["result"] = m.group(1)
        cur["passed"], cur["failed"], cur["ignored"] = map(int, m.group(2, 3, 4))
        cur["libtest_s"] = float(m.group(5))
        cur["end"] = now
        return
    if line.startswith("skipped: "):
        skips.append(line)
        if cur is not None:
            cur["skips"] += 1
        return
    m = long_running.match(line)
    if m:
        over[m.group(1)] = int(m.group(2))
        return
    m = test_line.match(line)
    if m:
        if m.group(2):
            finished(m.group(1), m.group(2).split()[0], now)
            pending = None
        else:
            pending = m.group(1)
        return
    word = line.strip().split(" ", 1)[0]
    if pending and word in ("ok", "FAILED", "ignored"):
        finished(pending, word, now)
        pending = None


def report(now):
    close_binary(now)
    w = []
    total = (now - first_binary) if first_binary is not None else 0.0
    w.append("== time per test binary (wall clock, slowest first)")
    w.append(f"{'secs':>8} {'passed':>6} {'failed':>6} {'ignored':>7} {'skipped':>7}  result  binary")
    for b in sorted(binaries, key=lambda b: b["end"] - b["start"], reverse=True):
        w.append(f"{b['end'] - b['start']:8.1f} {b['passed']:6d} {b['failed']:6d} "
                 f"{b['ignored']:7d} {b['skips']:7d}  {b['result']:<6}  {b['name']}")
    build = (first_binary - start) if first_binary is not None else now - start
    w.append(f"{build:8.1f}  building, before the first test binary")
    w.append(f"{total:8.1f}  running {len(binaries)} test binaries, one after another")
    w.append(f"{now - start:8.1f}  cargo test in all")
    w.append("")
    w.append("== slowest tests (approximate: the seconds since the previous result line")
    w.append("   of the same binary; a binary runs its tests in parallel unless they take")
    w.append("   TestLock, so \"into binary\" bounds a test's time from above)")
    w.append(f"{'secs':>8} {'into binary':>11}  outcome  test  [binary]")
    for gap, at, name, binary, outcome in sorted(tests, reverse=True)[:15]:
        note = f"  (over {over[name]} s by libtest)" if name in over else ""
        w.append(f"{gap:8.1f} {at:11.1f}  {outcome:<7}  {name}  [{binary}]{note}")
    w.append("")
    w.append(f"== skips: {len(skips)}")
    w.extend(skips)
    with open(out_path, "w") as f:
        f.write("\n".join(w) + "\n")


out = sys.stdout.buffer
for raw in sys.stdin.buffer:
    out.write(raw)
    out.flush()
    try:
        parse(ansi.sub("", raw.decode("utf-8", "replace")).rstrip("\r\n"), time.monotonic())
    except Exception as e:  # a parse problem must not break the pipe
        sys.stderr.write(f"ci/test.sh: timing: {e!r}\n")
try:
    report(time.monotonic())
except Exception as e:
    sys.stderr.write(f"ci/test.sh: timing: {e!r}\n")
PY

step "ci/install-deps.sh"
ci/install-deps.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A fresh clone builds everything once: incremental compilation only adds
# the writing of its caches (about a tenth of the build).
[ "${CI:-}" != "true" ] || export CARGO_INCREMENTAL=0
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# `cargo test` leaves libmfubench_simgpu.so only in target/debug/deps:
# `cargo build` puts it next to the binaries, where --sim-gpu finds it.
step "cargo build (binaries and the simulated GPU)"
cargo build --workspace
step "cargo test"
test_cmd=(cargo test --workspace --no-fail-fast)
rc=0
if command -v python3 >/dev/null; then
  "${test_cmd[@]}" 2>&1 | python3 -u -c "$TIMES_PY" "$times_dir/tests.txt" ||
    rc=${PIPESTATUS[0]}
else
  echo "ci/test.sh: python3 is missing: no test times"
  "${test_cmd[@]}" || rc=$?
fi
[ "$rc" -eq 0 ] || exit "$rc"
step "browser check (report.html in headless Chromium, no network)"
ci/browser-check.sh
