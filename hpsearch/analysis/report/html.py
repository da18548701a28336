"""The self-contained HTML page: plotly's JS inlined once, one <section> per report part."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
import plotly.offline

from hpsearch.console import fmt_value


@dataclass
class Section:
    """One part of the report: an id (the anchor and ``data-section``), a title, HTML body."""

    id: str
    title: str
    parts: list[str] = field(default_factory=list)

    def add_figure(self, fig: go.Figure) -> None:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))

    def add_text(self, text: str, css_class: str | None = None) -> None:
        attr = f' class="{css_class}"' if css_class else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")

    def add_table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt_value(c))}</td>" for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def add_image(self, path: Path) -> None:
        """Embed a PNG as a data URI (keeps the page self-contained)."""
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">')

    def render(self) -> str:
        return f'<section id="{self.id}" data-section="{self.id}"><h2>{html.escape(self.title)}</h2>\n' + "\n".join(self.parts) + "</section>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}section{margin-bottom:2.5em}nav a{margin-right:1em}img{max-width:100%}
.warning{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em}
"""


def render_page(title: str, sections: list[Section]) -> str:
    """A complete HTML document with plotly.js inlined, so it opens offline."""
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    js = plotly.offline.get_plotlyjs()
    body = "\n".join(s.render() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{js}</script></head><body>'
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>"
    )
