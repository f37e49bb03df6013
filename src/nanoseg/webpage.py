"""Self-contained HTML pages: pictures embedded as data URIs, one style sheet.

Shared by the experiment report (``experiments/report.py``) and the results report
(``analysis/report.py``), so that every report nanoseg writes opens anywhere as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
         "font-size:13px}th{background:#eef}img{max-width:100%}figcaption{color:#555;font-size:13px}")


def data_uri(data: bytes | str | Path, mime: str = "image/png") -> str:
    """``data:`` URI of image bytes (or of the file at a path)."""
    if not isinstance(data, bytes):
        data = Path(data).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def figure(data: bytes | str | Path, caption: str, mime: str = "image/png") -> str:
    """An embedded picture with its caption."""
    return f"<figure><img src='{data_uri(data, mime)}'/><figcaption>{html.escape(caption)}</figcaption></figure>"


def page(title: str, body: str, *, style: str = "", script: str = "") -> str:
    """A whole HTML document around ``body`` (already HTML)."""
    js = f"<script>{script}</script>" if script else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}{style}</style></head><body>{body}{js}</body></html>")
