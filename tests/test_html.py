"""``mi-bench report --format html``: one self-contained page, checked in headless Chromium (rows,
interval bars, embedded plots, sorting, expanding, filtering), with a screenshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import board_root, full_store  # noqa: F401  (fixtures)

from mi_bench.cli import run
from mi_bench.report import build_report, write_report

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(c)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars"]

# Runs inside the page after load: what a reader sees, and what clicks do. The result goes
# into <pre id="probe"> for --dump-dom to carry out.
PROBE = """
<script>
window.addEventListener('load', function () {
  var out = {};
  function visible(el) { var r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; }
  var tables = document.querySelectorAll('table.sortable');
  out.tables = tables.length;
  out.rows = Array.prototype.map.call(tables, function (t) {
    return t.querySelectorAll('tbody tr.row').length; });
  var bars = document.querySelectorAll('.iv .bar');
  out.bars = bars.length;
  out.bars_drawn = Array.prototype.filter.call(bars, visible).length;
  var imgs = document.querySelectorAll('figure img');
  out.images = imgs.length;
  out.images_drawn = Array.prototype.filter.call(imgs, function (i) {
    return i.complete && i.naturalWidth > 0 && visible(i); }).length;
  var sweep = document.getElementById('sweep').nextElementSibling;
  var th = Array.prototype.find.call(sweep.querySelectorAll('th'), function (h) {
    return h.textContent === 'worst over attacks'; });
  var col = Array.prototype.indexOf.call(th.parentNode.cells, th);
  function column() { return Array.prototype.map.call(sweep.querySelectorAll('tbody tr.row'),
    function (tr) { return tr.cells[col].getAttribute('data-v'); }); }
  out.before = column();
  th.click(); out.ascending = column();
  th.click(); out.descending = column();
  out.sort_mark = th.getAttribute('aria-sort');
  var rows = sweep.querySelectorAll('tbody tr');
  out.details_follow_rows = Array.prototype.every.call(rows, function (tr) {
    return !tr.classList.contains('detail') ||
      tr.previousElementSibling.classList.contains('row'); });
  var btn = sweep.querySelector('button.x'), detail = btn.closest('tr').nextElementSibling;
  out.detail_hidden = detail.hidden; btn.click();
  out.detail_shown = !detail.hidden && visible(detail);
  out.detail_text = detail.textContent;
  var eps = document.getElementById('f-eps');
  eps.value = '4/255'; eps.dispatchEvent(new Event('change'));
  out.shown_at_4 = Array.prototype.filter.call(sweep.querySelectorAll('tbody tr.row'),
    function (tr) { return !tr.hidden; }).map(function (tr) { return tr.dataset.eps; });
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>
"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture()
def page(full_store, board_root, tmp_path) -> Path:  # noqa: F811
    rep = build_report(full_store, root=board_root)
    written = write_report(rep, tmp_path / "report", ["html"], plots=True)
    assert tmp_path / "report" / "report.html" in written.files
    return tmp_path / "report" / "report.html"


def test_the_page_is_self_contained(page):
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no network
    assert "<link" not in html and "@import" not in html
    assert html.count("data:image/png;base64,") >= 1
    for heading in ("Ranked at eps 8/255 Linf", "Randomized defenses", "paired over the same",
                    "Every eps", "Missing", "Notes"):
        assert heading in html
    assert page.read_text() == page.read_text()  # deterministic file (no time stamp)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
def test_the_page_in_headless_chromium(page, full_store, tmp_path):  # noqa: F811
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(),
                    profile=tmp_path / "profile-1")
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert found, proc.stderr[-2000:]
    out = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    # ranked (1 deterministic mi-bench row + 5 RobustBench), randomized (1), gains (0 rows:
    # no table), every eps (3 rows)
    assert out["tables"] == 3 and out["rows"] == [6, 1, 3], out
    assert out["bars"] > 0 and out["bars_drawn"] == out["bars"]
    assert out["images"] >= 1 and out["images_drawn"] == out["images"]
    values = [float(v) for v in out["ascending"] if v]
    assert values == sorted(values) and len(values) == 3
    assert [float(v) for v in out["descending"] if v] == sorted(values, reverse=True)
    assert out["sort_mark"] == "descending" and out["details_follow_rows"]
    assert out["detail_hidden"] and out["detail_shown"]
    keys = [p.stem for p in (full_store / "records").glob("*.json")]
    assert any(k in out["detail_text"] for k in keys) and "checkpoint:" in out["detail_text"]
    assert out["shown_at_4"] == ["4/255"]
    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri(),
                    profile=tmp_path / "profile-2")
    assert shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG", proc.stderr[-2000:]
    keep = os.environ.get("MI_BENCH_SCREENSHOTS")
    if keep:  # CI can keep the screenshot as an artefact
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


@pytest.mark.parametrize("folder", ["leaderboards/results", "leaderboards/results/headline"])
def test_the_committed_pages_are_up_to_date(folder, tmp_path, monkeypatch, capsys):
    """The README's command, rerun: the committed report.html is what it writes."""
    monkeypatch.chdir(REPO)
    code = run(["report", "--results", f"{folder}/store", "--baseline",
                "robustbench:cifar10:Linf", "--format", "html", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "report.html").read_text() == (REPO / folder / "report.html").read_text()
