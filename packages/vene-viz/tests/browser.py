"""Opening vene-viz's HTML files in headless Chromium, as a reader would, and reading back
what the page shows: console errors, the plotted traces and a screenshot.

A copy of the page gets a probe: a first script that records errors and console.error calls,
and a last one that, once plotly has drawn, writes into the DOM what each plot holds (trace
types, the number of heatmap cells and line/bar points, axis tick labels and the hover label
that plotly shows for a chosen point). ``chromium --dump-dom`` returns that DOM; Chromium's
own console log (``--enable-logging=stderr``) is read for errors too. The page under test is
left unchanged; its screenshot is taken from the original file.
"""

from __future__ import annotations

import html
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message)));
window.addEventListener("unhandledrejection", e => window.__errors.push(String(e.reason)));
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.map(String).join(" ")); __consoleError(...a); };
</script>"""

PROBE_TAIL = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const plots = [...document.querySelectorAll(".js-plotly-plot")].map(gd => {
    const traces = gd.data.map(t => ({
      type: t.type,
      cells: t.type === "heatmap" ? t.z.reduce((n, row) => n + row.length, 0) : null,
      points: t.type !== "heatmap" ? t.y.length : null,
    }));
    const ticks = sel => [...gd.querySelectorAll(sel)].map(e => e.textContent);
    return {
      traces, hover: null, xticks: ticks(".xtick text"), yticks: ticks(".ytick text"),
      title: (gd.querySelector(".gtitle") || {}).textContent || "",
      heatmap_images: gd.querySelectorAll(".hm image").length,
      points_drawn: gd.querySelectorAll(".scatterlayer .point").length,
      bars_drawn: gd.querySelectorAll(".barlayer .point").length,
    };
  });
  const target = HOVER, gd = document.querySelector(".js-plotly-plot");
  if (target && gd) {
    gd._fullLayout.hovermode = "closest";
    Plotly.Fx.hover(gd, {xval: target[0], yval: target[1]}, target[2] || "xy");
  }
  setTimeout(() => {
  if (target && gd) {
    plots[0].hover = [...document.querySelectorAll(".hoverlayer .hovertext text")].map(e => e.textContent).join(" | ");
  }
  const pre = document.createElement("pre");
  pre.id = "vene-probe";
  pre.textContent = JSON.stringify({errors: window.__errors, plots});
  document.body.appendChild(pre);
  }, 300);
}, 300));
</script>"""

_CONSOLE = re.compile(r"CONSOLE.*?\] \"(.*?)\", source:", re.S)


def chromium() -> str:
    """The Chromium executable; skipped locally when absent, a failure on CI."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI must install it (.ci/run does).")
    pytest.skip(message)


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", "--allow-file-access-from-files"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout, check=False)


def open_page(path: pathlib.Path, hover: list[int] | None = None) -> dict:
    """What the page shows: ``errors`` (console and uncaught) and, per plot, what it holds."""
    page = path.read_text(encoding="utf-8")
    probe = path.with_name(f".probe-{path.name}")
    page = page.replace("<head>", "<head>" + PROBE_HEAD, 1)
    page = page.replace("</body>", PROBE_TAIL.replace("HOVER", json.dumps(hover)) + "</body>", 1)
    probe.write_text(page, encoding="utf-8")
    try:
        done = _run(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
                     "--dump-dom", probe.resolve().as_uri()])
    finally:
        probe.unlink()
    found = re.search(r'<pre id="vene-probe">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"the page never finished drawing; Chromium said:\n{done.stderr[-3000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    console = [m for m in _CONSOLE.findall(done.stderr) if "Uncaught" in m or "rror" in m]
    seen["errors"] = seen["errors"] + console
    return seen


def screenshot(path: pathlib.Path, out: pathlib.Path, size: tuple[int, int] = (1100, 800)) -> pathlib.Path:
    """A PNG of the page as Chromium renders it, at ``out`` and under ``$VENE_TEST_ARTIFACTS``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=15000",
                 f"--screenshot={out.resolve()}", path.resolve().as_uri()])
    assert out.exists() and out.stat().st_size > 0, f"no screenshot; Chromium said:\n{done.stderr[-3000:]}"
    artifacts = os.environ.get("VENE_TEST_ARTIFACTS")
    if artifacts:
        pathlib.Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, pathlib.Path(artifacts) / out.name)
    return out
