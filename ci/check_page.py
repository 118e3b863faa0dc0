#!/usr/bin/env python3
"""Checks what headless Chromium made of a page (used by ci/browser-check.sh).

    check_page.py SCREENSHOT.png NETLOG.json
    check_page.py --sorted asc|desc DOM.html
    check_page.py --fits DOM.html


- the screenshot is not blank: enough pixels differ from the background
  colour and enough distinct colours appear (text, tables and plots);
- the page made no network request: in Chromium's net log (--log-net-log),
  no URL request made on behalf of the page (its isolation key names the
  page's origin; Chromium's own background requests have none) for anything
  but file:, data:, blob:, about: or chrome: URLs.

With --sorted: DOM.html is Chromium's --dump-dom of report.html after a
script clicked the "vs median" header of the per-rank table once (asc) or
twice (desc); the rows must then be in that order of the column's values.

With --fits: DOM.html is the --dump-dom of a page in a 1280-pixel window
after a script wrote document.documentElement.scrollWidth, innerWidth and
the widest elements into it; the page must be no wider than the window.

Exit 0 when all hold, 1 with one line per problem otherwise. Standard
library only (the PNG is decoded with zlib).
"""

import collections
import json
import struct
import re
import sys
import zlib

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-extension:")


def read_png(path):
    """Returns (width, height, bpp, rows of unfiltered bytes) of an 8-bit PNG.

    Pure Python (no imaging library to install), with fast paths for what
    Chromium's screenshots are mostly made of: rows unchanged from the one
    above (filter Up with zero deltas) and Up rows, which unfilter with zip.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat = 8, []
    width = height = depth = ctype = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    zeros = bytes(stride)
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        filt = raw[start]
        delta = raw[start + 1 : start + 1 + stride]
        if filt == 0:
            line = bytearray(delta)
        elif filt == 2 and delta == zeros:
            line = prev
        elif filt == 2:
            line = bytearray((d + b) & 0xFF for d, b in zip(delta, prev))
        else:
            line = bytearray(delta)
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if filt == 1:
                    line[i] = (line[i] + a) & 0xFF
                elif filt == 3:
                    line[i] = (line[i] + (a + b) // 2) & 0xFF
                elif filt == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def check_screenshot(path):
    width, height, bpp, rows = read_png(path)
    counts = collections.Counter()
    last, last_counts = None, None
    for row in rows:
        if row is not last:
            last, last_counts = row, collections.Counter(zip(row[0::bpp], row[1::bpp], row[2::bpp]))
        counts.update(last_counts)
    background, bg_count = max(counts.items(), key=lambda kv: kv[1])
    total = width * height
    drawn = 1 - bg_count / total
    # Quantised, so that anti-aliasing alone does not make a page "colourful".
    colours = {(r >> 4, g >> 4, b >> 4) for (r, g, b) in counts}
    problems = []
    if drawn < 0.02:
        problems.append(f"{path}: blank: only {drawn:.2%} of the pixels differ from the background {background}")
    if len(colours) < 8:
        problems.append(f"{path}: only {len(colours)} distinct colours: no plots or tables rendered")
    print(f"screenshot {path}: {width}x{height}, {drawn:.1%} drawn, {len(colours)} colours")
    return problems


def page_requests(netlog_path):
    with open(netlog_path) as f:
        log = json.load(f)
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    out = []
    for e in log.get("events", []):
        if names.get(e.get("type")) != "URL_REQUEST_START_JOB":
            continue
        p = e.get("params") or {}
        url = p.get("url", "")
        if not url or url.startswith(LOCAL_SCHEMES):
            continue
        # Chromium's own background requests (update checks, time) belong to
        # no page: initiator "not an origin", isolation key "null null".
        if p.get("initiator") == "not an origin" and p.get("network_isolation_key", "null null") == "null null":
            continue
        out.append(url)
    return out


def check_sorted(direction, dom_path):
    """The per-rank table's "vs median" column, in row order, is sorted."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.section = None
            self.header = []
            self.rows = []
            self.in_th = False

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "details":
                self.section = a.get("id")
            if self.section != "ranks":
                return
            if tag == "th":
                self.in_th = True
                self.header.append("")
            elif tag == "tr":
                self.rows.append([])
            elif tag == "td" and self.rows:
                self.rows[-1].append(a.get("data-v"))

        def handle_endtag(self, tag):
            if tag == "th":
                self.in_th = False

        def handle_data(self, data):
            if self.in_th and self.section == "ranks":
                self.header[-1] += data

    p = Rows()
    with open(dom_path) as f:
        p.feed(f.read())
    col = p.header.index("vs median")
    values = [float(r[col]) for r in p.rows if len(r) > col and r[col]]
    want = sorted(values, reverse=(direction == "desc"))
    print(f"per-rank table after sorting {direction} by 'vs median': {values}")
    if len(values) < 2:
        return [f"{dom_path}: fewer than two ranks to sort"]
    if values != want:
        return [f"{dom_path}: the rows are not sorted {direction}: {values}"]
    return []


def check_fits(dom_path):
    """The page is no wider than the window: the `width-check` line that
    browser-check.sh's script wrote into the DOM says
    `scrollWidth=N innerWidth=M widest=…`."""
    text = open(dom_path, encoding="utf-8", errors="replace").read()
    m = re.search(r"scrollWidth=(\d+) innerWidth=(\d+) widest=([^<]*)", text)
    if not m:
        return [f"{dom_path}: no width-check line (the script did not run)"]
    scroll, inner, widest = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    print(f"page width {scroll} px in a {inner} px window")
    if scroll > inner:
        return [f"{dom_path}: the page is {scroll} px wide in a {inner} px window (overflows: {widest or '?'})"]
    return []


def main(argv):
    if len(argv) == 3 and argv[1] == "--fits":
        problems = check_fits(argv[2])
        for p in problems:
            print(f"FAIL: {p}")
        return 1 if problems else 0
    if len(argv) == 4 and argv[1] == "--sorted":
        problems = check_sorted(argv[2], argv[3])
        for p in problems:
            print(f"FAIL: {p}")
        return 1 if problems else 0
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems = check_screenshot(argv[1])
    reqs = page_requests(argv[2])
    for url in reqs:
        problems.append(f"the page requested {url}")
    print(f"net log {argv[2]}: {len(reqs)} request(s) made by the page")
    for p in problems:
        print(f"FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
