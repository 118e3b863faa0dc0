#!/usr/bin/env bash
# report.html in a real browser: runs a real 2-rank CPU benchmark (the
# quickstart, shortened), renders its report.html in headless Chromium with
# no network (a fresh network namespace when we can make one, and every host
# name mapped to nothing) and checks with ci/check_page.py that the
# screenshot is not blank and that the page made no network request.
# Before that, two pages that must fail (an empty page, a page loading
# remote resources) show that the checks can fail.
#
#   ci/browser-check.sh [SCREENSHOT.png]    (default target/browser-check/report.png)
#
# Exits 0 with "SKIPPED" when Chromium is not installed (ci/install-deps.sh
# installs it; it says so when it cannot).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shot=${1:-$root/target/browser-check/report.png}
mkdir -p "$(dirname "$shot")"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIPPED browser check: chromium is not installed (apt-get install chromium)"
  exit 0
fi
# Ubuntu's "chromium" package is a stub that wants snapd.
if ! "$chromium" --version >/dev/null 2>&1; then
  echo "SKIPPED browser check: $chromium is installed but does not run ($("$chromium" --version 2>&1 | head -1))"
  exit 0
fi
command -v python3 >/dev/null || { echo "ci/browser-check.sh: python3 is needed" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No network for the browser: a new network namespace has only a downed
# loopback. Without the privilege to make one, the resolver rules alone.
ns=()
if unshare -n true 2>/dev/null; then
  ns=(unshare -n)
else
  echo "ci/browser-check.sh: cannot create a network namespace; relying on --host-resolver-rules"
fi

# render URL PNG NETLOG: a full-page-height screenshot and the net log.
render() {
  local profile
  profile=$(mktemp -d -p "$tmp")
  timeout 120 "${ns[@]}" "$chromium" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
    --log-net-log="$3" --hide-scrollbars --window-size=1300,3400 \
    --screenshot="$2" "$1" >"$tmp/chromium.log" 2>&1 || {
      echo "ci/browser-check.sh: chromium failed on $1:" >&2
      tail -20 "$tmp/chromium.log" >&2
      exit 1
    }
  [ -s "$2" ] || { echo "ci/browser-check.sh: chromium wrote no screenshot of $1" >&2; exit 1; }
}

echo "== browser check: the checks fail on a blank page and on a page that fetches"
printf '<!DOCTYPE html><html><body></body></html>\n' >"$tmp/blank.html"
cat >"$tmp/fetches.html" <<'EOF'
<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.invalid/x.css"></head>
<body><h1>remote</h1><img src="http://images.invalid/x.png">
<script>fetch('https://api.invalid/data.json').catch(function(){});</script></body></html>
EOF
for page in blank fetches; do
  render "file://$tmp/$page.html" "$tmp/$page.png" "$tmp/$page.netlog.json"
  if python3 ci/check_page.py "$tmp/$page.png" "$tmp/$page.netlog.json" >"$tmp/$page.check" 2>&1; then
    cat "$tmp/$page.check"
    echo "ci/browser-check.sh: check_page.py accepted the $page control page" >&2
    exit 1
  fi
done
grep -q "blank" "$tmp/blank.check" || { cat "$tmp/blank.check"; exit 1; }
grep -q "the page requested http://images.invalid/x.png" "$tmp/fetches.check" || { cat "$tmp/fetches.check"; exit 1; }
echo "ok: both control pages are rejected"

echo "== browser check: a real 2-rank run"
cargo build -q -p mfubench-launcher -p mfubench-worker
sed -e 's/^warmup = .*/warmup = 1/' -e 's/^iterations = .*/iterations = 2/' \
  configs/quickstart.toml >"$tmp/quickstart.toml"
# 0 (accepted) and 1 (a rule failed on this loaded machine) both leave a report.
rc=0
target/debug/mfubench run "$tmp/quickstart.toml" --np 2 --out "$tmp/results" --run-id browser \
  >"$tmp/run.out" 2>&1 || rc=$?
if [ "$rc" -gt 1 ]; then
  tail -30 "$tmp/run.out" >&2
  echo "ci/browser-check.sh: mfubench run exited $rc" >&2
  exit 1
fi
html=$(sed -n 's/^report: //p' "$tmp/run.out")
[ -n "$html" ] && [ -f "$html" ] || { tail -5 "$tmp/run.out"; echo "ci/browser-check.sh: mfubench run printed no report path" >&2; exit 1; }
echo "mfubench run printed: report: $html"

render "file://$html" "$shot" "$tmp/report.netlog.json"
python3 ci/check_page.py "$shot" "$tmp/report.netlog.json"
echo "ok: report.html renders offline; screenshot: $shot"

echo "== browser check: sorting the per-rank table"
for dir in asc desc; do
  clicks=1
  [ "$dir" = desc ] && clicks=2
  # The page plus a script that clicks the "vs median" header like a reader.
  sed "s|</body></html>|<script>var th=Array.prototype.find.call(document.querySelectorAll('#ranks th'),function(h){return h.textContent==='vs median'});for(var i=0;i<$clicks;i++)th.click();</script></body></html>|" \
    "$html" >"$(dirname "$html")/sorted-$dir.html"
  profile=$(mktemp -d -p "$tmp")
  timeout 120 "${ns[@]}" "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
    --dump-dom "file://$(dirname "$html")/sorted-$dir.html" >"$tmp/sorted-$dir.dom.html" 2>"$tmp/chromium.log"
  python3 ci/check_page.py --sorted "$dir" "$tmp/sorted-$dir.dom.html"
done
echo "ok: the per-rank table sorts both ways"

# dom_with_widths PAGE OUT: the DOM of PAGE in a 1280-pixel-wide window, with
# the page's and the window's widths and the widest elements written into it
# by a script, as a reader's laptop would lay it out.
dom_with_widths() {
  local page=$1 out=$2 profile
  sed 's|</body></html>|<script>(function(){var w=window.innerWidth,o=[];document.querySelectorAll("body *").forEach(function(e){var r=e.getBoundingClientRect();if(r.right>w+1\&\&o.length<5){o.push(e.tagName.toLowerCase()+(e.id?"#"+e.id:"")+(e.className\&\&typeof e.className==="string"?"."+e.className.split(" ")[0]:"")+" right="+Math.round(r.right))}});var p=document.createElement("pre");p.id="width-check";p.textContent="scrollWidth="+document.documentElement.scrollWidth+" innerWidth="+w+" widest="+o.join("; ");document.body.appendChild(p)})();</script></body></html>|' \
    "$page" >"$page.widths.html"
  profile=$(mktemp -d -p "$tmp")
  timeout 120 "${ns[@]}" "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
    --window-size=1280,900 --dump-dom "file://$page.widths.html" >"$out" 2>"$tmp/chromium.log"
}

echo "== browser check: no horizontal overflow at 1280 pixels"
printf '<!DOCTYPE html><html><body><table><tr><td style="white-space:nowrap">%s</td></tr></table></body></html>\n' \
  "$(printf 'wide%.0s ' $(seq 1 400))" >"$tmp/wide.html"
dom_with_widths "$tmp/wide.html" "$tmp/wide.dom.html"
if python3 ci/check_page.py --fits "$tmp/wide.dom.html" >"$tmp/wide.check" 2>&1; then
  cat "$tmp/wide.check"
  echo "ci/browser-check.sh: check_page.py accepted a page wider than the window" >&2
  exit 1
fi
echo "ok: a page wider than the window is rejected"
dom_with_widths "$html" "$tmp/report.widths.dom.html"
python3 ci/check_page.py --fits "$tmp/report.widths.dom.html"
echo "ok: report.html fits a 1280-pixel window"

echo "== browser check: a soak's report.html draws its uPlot charts offline"
rc=0
target/debug/mfubench soak "$tmp/quickstart.toml" --np 2 --duration 8s --window 2s \
  --out "$tmp/results" --run-id soak >"$tmp/soak.out" 2>&1 || rc=$?
if [ "$rc" -gt 1 ]; then
  tail -30 "$tmp/soak.out" >&2
  echo "ci/browser-check.sh: mfubench soak exited $rc" >&2
  exit 1
fi
soak_html=$(sed -n 's/^report: //p' "$tmp/soak.out")
[ -n "$soak_html" ] && [ -f "$soak_html" ] || { tail -5 "$tmp/soak.out"; echo "ci/browser-check.sh: mfubench soak printed no report path" >&2; exit 1; }
render "file://$soak_html" "$tmp/soak.png" "$tmp/soak.netlog.json"
python3 ci/check_page.py "$tmp/soak.png" "$tmp/soak.netlog.json"
# The charts exist only if the inlined uPlot ran: count its roots in the DOM.
profile=$(mktemp -d -p "$tmp")
timeout 120 "${ns[@]}" "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
  --dump-dom "file://$soak_html" >"$tmp/soak.dom.html" 2>"$tmp/chromium.log"
charts=$(grep -o 'class="uplot' "$tmp/soak.dom.html" | wc -l)
want=$(grep -o '"title":' "$soak_html" | wc -l)
if [ "$charts" -lt 3 ] || [ "$charts" -ne "$want" ]; then
  echo "ci/browser-check.sh: the soak page drew $charts uPlot chart(s), its data has $want" >&2
  exit 1
fi
echo "ok: the soak's report.html draws its $charts charts offline"
