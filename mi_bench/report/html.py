"""``mi-bench report --format html``: the whole report as one self-contained page.

Why: a table of ``mean [low, high]`` strings hides which intervals overlap; drawn as bars on one
0-100% scale they show it at a glance. The page is one file (CSS, JS and the plots inline as
base64 PNG; no network or CDN at view time), so it can be mailed or committed beside
``report.md``. Every table of the ``Report`` is there, sortable by any column and filtered by eps
and defense; each mi-bench row expands to its settings and record keys.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

import pandas as pd

from mi_bench.attacks.registry import find_suite
from mi_bench.report.columns import (
    RANDOMIZED_NOTE,
    get_column,
    ranked_legend,
    suite_column,
    suite_order,
)
from mi_bench.report.gains import GAINS_MD, GAINS_NOTE, paired_gains
from mi_bench.report.rows import Row

# (header, CSV column prefix) of every interval column, in the report's order


def metrics() -> list[tuple[str, str]]:
    """(header, CSV prefix) of every accuracy column, from the column list and the registry."""
    worst = get_column("worst")
    return [("clean", "clean"), *[(suite_column(s), find_suite(s).csv) for s in suite_order()],
            (worst.header, worst.fields[0].removesuffix("_mean"))]

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:middle}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.mi{background:#f4f8ff}tr.detail td{background:#fafafa;font-size:12px}
td:first-child{white-space:nowrap}td.num{min-width:9em}.txt{font-variant-numeric:tabular-nums;font-size:12px}
.iv{position:relative;height:8px;background:#e8e8e8;border-radius:2px;margin:2px 0}
.iv .bar{position:absolute;top:0;height:8px;background:#7aa6e0;border-radius:2px}
.iv .tick{position:absolute;top:-2px;width:2px;height:12px;background:#123}
.iv .zero{position:absolute;top:-2px;left:50%;width:1px;height:12px;background:#999}
button.x{border:0;background:none;cursor:pointer;font-size:12px;padding:0 4px}
.filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc}
.filters label{margin-right:1.5em}figure{display:inline-block;margin:.5em}
figure img{max-width:560px;border:1px solid #ddd}pre{white-space:pre-wrap;margin:0}
"""

JS = """
function cellValue(tr,i){var v=tr.cells[i].getAttribute('data-v');
  return v===null?tr.cells[i].textContent.trim():v;}
function sortBy(th){var table=th.closest('table'),body=table.tBodies[0];
  var i=Array.prototype.indexOf.call(th.parentNode.cells,th);
  var dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
  table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',dir);
  var units=[];Array.prototype.forEach.call(body.rows,function(tr){
    if(tr.classList.contains('detail')){units[units.length-1].push(tr);}else{units.push([tr]);}});
  var numeric=units.every(function(u){var v=cellValue(u[0],i);return v===''||!isNaN(+v);});
  units.sort(function(a,b){var x=cellValue(a[0],i),y=cellValue(b[0],i);
    if(x===''&&y==='')return 0;if(x==='')return 1;if(y==='')return -1;
    var c=numeric?(+x)-(+y):x.localeCompare(y);return dir==='ascending'?c:-c;});
  units.forEach(function(u){u.forEach(function(tr){body.appendChild(tr);});});}
function applyFilters(){var eps=document.getElementById('f-eps').value,
  def=document.getElementById('f-defense').value,rb=document.getElementById('f-rb').checked;
  document.querySelectorAll('tr.row').forEach(function(tr){
    var ok=(eps===''||tr.dataset.eps===eps);
    if(tr.dataset.source==='RobustBench'){ok=ok&&rb;}
    else{ok=ok&&(def===''||tr.dataset.defense===def);}
    tr.hidden=!ok;var d=tr.nextElementSibling;
    if(d&&d.classList.contains('detail')&&!ok){d.hidden=true;}});}
function toggle(btn){var d=btn.closest('tr').nextElementSibling;d.hidden=!d.hidden;
  btn.textContent=d.hidden?'\\u25B8':'\\u25BE';}
document.addEventListener('DOMContentLoaded',function(){
  document.querySelectorAll('th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  ['f-eps','f-defense','f-rb'].forEach(function(id){
    document.getElementById(id).addEventListener('change',applyFilters);});
  document.querySelectorAll('button.x').forEach(function(b){
    b.addEventListener('click',function(e){e.stopPropagation();toggle(b);});});});
"""


def _nan(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _value(v) -> str:
    """A cell's sort key: numbers as they are, missing as ''."""
    return "" if _nan(v) else str(v)


def interval_cell(mean, low, high, signed: bool = False) -> str:
    """A number cell: the bar of its 95% interval and a tick at the mean, on 0..100% (signed:
    -100..+100 with 0 in the middle), and the text beside it."""
    if _nan(mean):
        return '<td class="num" data-v="">—</td>'
    pos = (lambda p: 50 + p / 2) if signed else (lambda p: p)
    fmt = "{:+.1f}" if signed else "{:.1f}"
    text = fmt.format(mean)
    bar = ""
    if not (_nan(low) or _nan(high)):
        left, right = (min(max(pos(v), 0.0), 100.0) for v in (low, high))
        bar = f'<span class="bar" style="left:{left:.2f}%;width:{max(right - left, 0.4):.2f}%"></span>'
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    zero = '<span class="zero"></span>' if signed else ""
    tick = f'<span class="tick" style="left:{min(max(pos(mean), 0.0), 100.0):.2f}%"></span>'
    return (f'<td class="num" data-v="{mean:.4f}"><div class="iv">{zero}{bar}{tick}</div>'
            f'<span class="txt">{escape(text)}</span></td>')


def _text_cell(v) -> str:
    return f'<td data-v="{escape(_value(v))}">{"—" if _nan(v) else escape(str(v))}</td>'


def _details(row: Row) -> str:
    """What a row was made with: the model, the defense settings and, per column, the chosen
    attack setting and every record key (the chosen one's first)."""
    parts = [f"checkpoint: {row.checkpoint} (sha256 {row.sha256 or '?'})",
             f"defense: {row.defense} {json.dumps(row.settings, sort_keys=True)}"]
    for suite, cell in row.cells.items():
        rec = cell.records[0]
        setting = {"attack": rec.get("attack"), "attack_draws": rec.get("attack_draws"),
                   "eval_repeats": rec.get("eval_repeats"), "n": rec.get("n")}
        if rec.get("surrogate"):
            setting["surrogate"] = rec["surrogate"]
        keys = [r["key"] for r in cell.records]
        others = [r["key"] for v in cell.others for r in v.records]
        parts.append(f"{suite_column(suite)}: {json.dumps(setting, sort_keys=True)}; seeds "
                     f"{cell.seeds}; records {', '.join(keys)}"
                     + (f"; weaker settings' records {', '.join(others)}" if others else ""))
    parts += [f"note: {n}" for n in row.notes()]
    return "<pre>" + escape("\n".join(parts)) + "</pre>"


def _table(head: list[str], body: list[str]) -> str:
    if not body:
        return "<p>(no rows)</p>"
    ths = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table class="sortable"><thead><tr>{ths}</tr></thead><tbody>' + "".join(body) + \
        "</tbody></table>"


def _row_html(cells: list[str], attrs: dict[str, str], row: Row | None, width: int) -> str:
    data = "".join(f' data-{k}="{escape(v)}"' for k, v in attrs.items())
    cls = "row mi" if row is not None else "row"
    out = f'<tr class="{cls}"{data}>' + "".join(cells) + "</tr>"
    if row is not None:
        out += f'<tr class="detail" hidden><td colspan="{width}">{_details(row)}</td></tr>'
    return out


def _metric_cells(rec: dict) -> list[str]:
    return [interval_cell(rec.get(f"{p}_mean"), rec.get(f"{p}_ci_low"), rec.get(f"{p}_ci_high"))
            for _, p in metrics()]


def _toggle(row: Row | None) -> str:
    return '<button class="x" title="settings and record keys">\u25B8</button>' if row else ""


def ranked_table(frame: pd.DataFrame, rows: list[Row]) -> str:
    """The ranked table (RobustBench entries and mi-bench rows), one frame of ``rep.ranked``."""
    by_key: dict[tuple, list[Row]] = {}
    for r in rows:
        by_key.setdefault((r.model, r.defense_label, r.forwards), []).append(r)
    head = ["rank", "source", "model", "defense", "N", *[h for h, _ in metrics()], "seeds", "n"]
    body = []
    for rec in frame.to_dict("records"):
        mine = rec["source"] == "mi-bench"
        row = by_key.get((rec["model"], rec["defense"], rec["N"]), [None]).pop(0) if mine \
            else None
        rank = rec["rank"]
        if mine and not _nan(rec.get("rank_best")):
            rank_text = f"{rank} ({rec['rank_best']}–{rec['rank_worst']})"
        else:
            rank_text = "—" if _nan(rank) else str(rank)
        cells = [f'<td data-v="{_value(rank)}">{_toggle(row)}{escape(rank_text)}</td>',
                 _text_cell(rec["source"]), _text_cell(rec["model"]),
                 _text_cell(rec["defense"] or ""), _text_cell(rec["N"]), *_metric_cells(rec),
                 _text_cell(rec["seeds"]), _text_cell(rec["n"])]
        attrs = {"source": rec["source"], "eps": str(rec["eps"]),
                 "defense": rec["defense"] if mine else ""}
        body.append(_row_html(cells, attrs, row, len(head)))
    return _table(head, body)


def sweep_table(rep) -> str:
    """Every row at every eps (``rep.sweep`` is built from ``rep.rows`` in their order)."""
    head = ["model", "defense", "N", "norm", "eps", *[h for h, _ in metrics()], "seeds", "n"]
    body = []
    for row, rec in zip(rep.rows, rep.sweep.to_dict("records")):
        cells = [f'<td data-v="{escape(row.model)}">{_toggle(row)}{escape(row.model)}</td>',
                 _text_cell(row.defense_label), _text_cell(row.forwards), _text_cell(row.norm),
                 f'<td data-v="{row.eps:.8f}">{escape(row.eps_label)}</td>',
                 *_metric_cells(rec), _text_cell(rec["seeds"]), _text_cell(rec["n"])]
        attrs = {"source": "mi-bench", "eps": row.eps_label, "defense": row.defense_label}
        body.append(_row_html(cells, attrs, row, len(head)))
    return _table(head, body)


def gains_html(rows: list[Row]) -> str:
    head = [get_column(k).header for k in GAINS_MD]
    body = []
    for g in paired_gains(rows):
        matched = (interval_cell(100 * g.matched, 100 * g.matched_ci[0], 100 * g.matched_ci[1],
                                 True) if g.matched is not None else _text_cell("—"))
        cells = [_text_cell(g.row.model), _text_cell(g.row.defense_label),
                 f'<td data-v="{g.row.eps:.8f}">{escape(g.row.where)}</td>',
                 _text_cell(g.row.image_set[0]),
                 interval_cell(100 * g.robust, 100 * g.robust_ci[0], 100 * g.robust_ci[1], True),
                 matched,
                 interval_cell(100 * g.clean, 100 * g.clean_ci[0], 100 * g.clean_ci[1], True),
                 _text_cell(g.verdict)]
        attrs = {"source": "mi-bench", "eps": g.row.eps_label, "defense": g.row.defense_label}
        body.append(_row_html(cells, attrs, None, len(head)))
    return _table(head, body)


def _plots(files: list[Path]) -> str:
    figs = []
    for p in files:
        if p.suffix == ".png" and p.is_file():
            data = base64.b64encode(p.read_bytes()).decode()
            figs.append(f'<figure><img alt="{escape(p.stem)}" src="data:image/png;base64,'
                        f'{data}"><figcaption>{escape(p.name)}</figcaption></figure>')
    return "".join(figs) or "<p>(no plots)</p>"


def _options(values: list[str], label: str) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<option value="">every {label}</option>{opts}'


def render_html(rep, files: list[Path] | None = None, notes: list[str] | None = None) -> str:
    """The page for ``rep`` (a ``report.Report``), with the PNGs among ``files`` embedded."""

    randomized = rep.ranked["randomized"].to_numpy(dtype=bool)
    eps = sorted({r.eps_label for r in rep.rows} | {str(e) for e in rep.ranked["eps"]},
                 key=lambda e: next((r.eps for r in rep.rows if r.eps_label == e), math.inf))
    defenses = sorted({r.defense_label for r in rep.rows})
    snap = f", snapshot {rep.snapshot_date}" if rep.snapshot_date else ""
    items = "".join(f"<li>{escape(m)}</li>" for m in rep.missing) or "<li>nothing</li>"
    note_items = "".join(f"<li>{escape(f'{r.label} ({r.where}): {n}')}</li>"
                         for r in rep.rows for n in r.notes())
    note_items += "".join(f"<li>{escape(n)}</li>" for n in [*rep.unranked, *(notes or [])])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>mi-bench report</title>", f"<style>{CSS}</style>", f"<script>{JS}</script>",
        "</head><body>", "<h1>mi-bench report</h1>",
        (f"<p>results: <code>{escape(str(rep.results))}</code> ({rep.n_records} records, "
        f"{len(rep.rows)} rows over all eps); baseline: RobustBench {escape(rep.dataset)} "
        f"{escape(rep.threat)} ({rep.board_size} entries{escape(snap)}); headline eps "
        f"{escape(rep.headline_label)}. Bars: the 95% interval over images on a 0–100% "
        "scale, the tick the mean; click a header to sort, ▸ for a row's settings and record "
        "keys.</p>"),
        ('<div class="filters"><label>eps <select id="f-eps">'
        f'{_options(eps, "eps")}</select></label><label>defense <select id="f-defense">'
        f'{_options(defenses, "defense")}</select></label><label><input type="checkbox" '
        'id="f-rb" checked> RobustBench entries</label></div>'),
        f"<p>{escape(ranked_legend())}</p>",
        f'<h2 id="ranked">Ranked at eps {escape(rep.headline_label)} {escape(rep.threat)}</h2>',
        ranked_table(rep.ranked[~randomized], rep.headline),
    ]
    if randomized.any():
        parts += [('<h2 id="randomized">Randomized defenses (RobustBench admits only '
                  'deterministic ones)</h2>'), f"<p>{escape(RANDOMIZED_NOTE)}</p>",
                  ranked_table(rep.ranked[randomized], rep.headline)]
    parts += ['<h2 id="gains">What each defense changes, paired over the same images</h2>',
              f"<p>{escape(GAINS_NOTE)}</p>", gains_html(rep.rows),
              '<h2 id="sweep">Every eps</h2>', sweep_table(rep),
              '<h2 id="plots">Plots</h2>', _plots(files or []),
              f'<h2 id="missing">Missing</h2><ul>{items}</ul>',
              f'<h2 id="notes">Notes</h2><ul>{note_items or "<li>none</li>"}</ul>',
              "</body></html>"]
    return "\n".join(parts) + "\n"
