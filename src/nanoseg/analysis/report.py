"""``report.html`` of a results folder (``predict --report``, ``measure --report``).

One self-contained file: the folder's overall numbers with their intervals, histograms of ring
diameter, band width, coverage and circularity (units on every axis), and a table of the images
(rings, density, median diameter, confidence) that sorts by any column and starts in review
order (lowest confidence first), each row with its overlay thumbnail linking to the full overlay
in ``overlays/``.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from .. import figures, io, webpage

THUMB_WIDTH_PX = 140

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.dataset.order !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.dataset.order = ''; h.classList.remove('asc', 'desc'); });
    th.dataset.order = asc ? 'asc' : 'desc'; th.classList.add(asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

STYLE = ("table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:' \\2195';color:#99a}"
         "table.sortable th.asc:after{content:' \\2191';color:#000}table.sortable th.desc:after{content:' \\2193';"
         "color:#000}td.num{text-align:right;font-variant-numeric:tabular-nums}td img{display:block;width:"
         f"{THUMB_WIDTH_PX}px;max-width:none}}.note{{color:#555;font-size:13px}}table.overall td:first-child"
         "{font-weight:bold}")


def _num(r: dict, key: str) -> float | None:
    v = r.get(key, "")
    if v in ("", None):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"


def _ci(d: dict | None, key: str = "median", digits: int = 3) -> str:
    """'value [low, high]' of a describe() / ratio_summary() dict."""
    if not d:
        return "–"
    value = d.get(key, d.get("value"))
    ci = d.get(f"{key}_ci95", d.get("ci95"))
    text = _fmt(value, digits)
    return f"{text} [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]" if ci else text


def ring_histograms(rows: list[dict]) -> tuple[bytes, str]:
    """PNG of the four histograms and the length unit used ("nm" or "px")."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    nm_rows = [r for r in rows if _num(r, "mean_radius_nm") is not None]
    unit = "nm" if nm_rows else "px"
    use = nm_rows if nm_rows else rows
    panels = [
        ([2 * _num(r, f"mean_radius_{unit}") for r in use], f"ring diameter ({unit})"),
        ([_num(r, f"ring_width_{unit}") for r in use], f"band width ({unit})"),
        ([_num(r, "coverage") for r in rows], "angular coverage (fraction of the circle)"),
        ([_num(r, "circularity") for r in rows], "circularity (minor / major axis)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    for ax, (vals, label) in zip(axes.ravel(), panels):
        vals = [v for v in vals if v is not None]
        if vals:
            unit_range = (0, 1) if "fraction" in label or "axis" in label else None
            ax.hist(vals, bins=min(30, max(5, int(np.sqrt(len(vals)) * 2))), range=unit_range,
                    color="#4a7ab5", edgecolor="white")
            ax.axvline(float(np.median(vals)), color="#a63603", ls="--", lw=1.2, label=f"median {np.median(vals):.3g}")
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no rings", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("rings (count)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return figures.figure_png(fig), unit


def _thumbnail(path: Path) -> str | None:
    if not path.exists():
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = THUMB_WIDTH_PX / w
    small = cv2.resize(img, (THUMB_WIDTH_PX, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 82])
    return webpage.data_uri(buf.tobytes(), "image/jpeg") if ok else None


def _mean_std(d: dict | None) -> str:
    if not d:
        return "–"
    return _fmt(d.get("mean")) + (f" ± {_fmt(d['std'])}" if d.get("std") is not None else "")


def _overall_table(o: dict, unit: str) -> str:
    density = o.get("density_per_um2")
    lines = [
        ("images", str(o["n_images"]) + (f" ({o['n_images_with_scale']} with a pixel size)"
                                         if o["n_images_with_scale"] != o["n_images"] else "")),
        ("ring structures", f"{o['n_structures']} ({o['n_nested']} nested inside another ring)"),
        ("measured field", f"{_fmt(o['field_area_um2'])} µm²" if o.get("field_area_um2") else
         f"{_fmt(o['field_area_px'] / 1e6)} megapixels"),
        ("density", f"{_ci(density)} rings/µm²" if density else f"{_ci(o.get('density_per_mpx'))} rings/megapixel"),
        ("area covered by rings", _ci(o.get("ring_area_fraction"), digits=3) + " (fraction of the field)"),
        (f"diameter ({unit}), median", _ci(o.get(f"diameter_{unit}"))),
        (f"diameter ({unit}), mean ± std", _mean_std(o.get(f"diameter_{unit}"))),
        (f"band width ({unit}), median", _ci(o.get(f"band_width_{unit}"))),
        ("angular coverage, median", _ci(o.get("coverage"))),
        ("circularity, median", _ci(o.get("circularity"))),
        ("rings per image, mean ± std", _mean_std(o.get("structures_per_image"))),
    ]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in lines)
    return f"<table class='overall'>{body}</table>"


def _image_table(folder: Path, summary: dict, review: list[dict], unit: str) -> str:
    images = summary["images"]
    per_um2 = any(v.get("density_per_um2") is not None for v in images.values())
    head = ["review #", "overlay", "image", "rings", "nested", "density (rings/µm²)" if per_um2 else
            "density (rings/MP)", f"median diameter ({unit})", "mean confidence", "nm/px (source)"]
    out = ["<table class='sortable'><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for rank, rv in enumerate(review, 1):
        name = rv["image"]
        v = images[name]
        thumb = _thumbnail(folder / "overlays" / f"{name}.png")
        href = "overlays/" + quote(f"{name}.png")
        cell_img = f"<a href='{href}'><img src='{thumb}' alt='{html.escape(name)}'/></a>" if thumb else "–"
        density = v.get("density_per_um2") if per_um2 else v.get("density_per_mpx")
        diam = (v.get(f"diameter_{unit}") or {}).get("median")
        conf = v.get("mean_confidence")
        cells = [
            (rank, str(rank), "num"), (name, cell_img, ""), (name, html.escape(name), ""),
            (v["n_structures"], str(v["n_structures"]), "num"), (v["n_nested"], str(v["n_nested"]), "num"),
            (density if density is not None else -1, _fmt(density), "num"),
            (diam if diam is not None else -1, _fmt(diam), "num"),
            (conf if conf is not None else -1, _fmt(conf), "num"),
            (v.get("nm_per_px") or 0, f"{_fmt(v.get('nm_per_px'))} ({html.escape(str(v.get('scale_source')))})", "num"),
        ]
        out.append("<tr>" + "".join(f"<td class='{cls}' data-sort='{html.escape(str(key))}'>{text}</td>"
                                    for key, text, cls in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def write_report(folder: str | Path, *, summary: dict, rows: list[dict], review: list[dict],
                 title: str = "nanoseg results") -> Path:
    """Write ``folder/report.html`` from the folder's summary, rings and review order.

    Parameters
    ----------
    folder : path
        Results folder holding ``overlays/<image>.png``.
    summary : dict
        The folder's ``summary.json`` content.
    rows : list of dict
        The rings (``structures.csv`` rows).
    review : list of dict
        Images in review order (``review.csv`` rows), lowest confidence first.
    title : str
        Page title.
    """
    folder = Path(folder)
    hist_png, unit = ring_histograms(rows)
    o = summary["overall"]
    has_conf = any(r.get("mean_confidence") is not None for r in review)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>{summary['n_images']} image(s), {summary['n_structures']} ring structure(s). "
             "Intervals are bootstrap 95% intervals that resample whole images (seed "
             f"{summary.get('bootstrap', {}).get('seed', 0)}); values in brackets are [low, high].</p>",
             "<h2>Overall</h2>", _overall_table(o, unit),
             "<h2>Distributions</h2>",
             webpage.figure(hist_png, f"All rings of the folder; lengths in {unit}"
                            + ("" if unit == "nm" else " (no pixel size known: pass --scale-nm-per-px)")
                            + ". Dashed: median."),
             "<h2>Images</h2>",
             "<p class='note'>" + ("Rows start in review order: lowest mean confidence of the ring class first, "
                                   "the images to check by eye before trusting the numbers. " if has_conf else
                                   "Masks measured as given (no model confidence): rows in name order. ")
             + "Click a column title to sort; click a thumbnail for the full overlay.</p>",
             _image_table(folder, summary, review, unit)]
    if summary.get("skipped"):
        items = "".join(f"<li>{html.escape(s['file'])}: {html.escape(s['reason'])}</li>" for s in summary["skipped"])
        parts += ["<h2>Skipped inputs</h2>", f"<ul>{items}</ul>"]
    path = folder / "report.html"
    io.atomic_write_text(path, webpage.page(title, "".join(parts), style=STYLE, script=SORT_JS))
    return path
