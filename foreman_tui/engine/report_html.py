"""The report as one self-contained HTML page: its Markdown turned into HTML, the run's timeline after the title."""

from __future__ import annotations

import html
import re


def to_html(markdown: str, title: str, picture: str = "") -> str:
    """A self-contained HTML page of the report (headings, tables, lists, code, paragraphs), with ``picture``
    (the run's timeline) after its first heading."""
    body: list[str] = []
    table: list[list[str]] = []
    lists = 0
    """Lists open: one per level of indentation (two spaces a level)."""

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)

    def flush() -> None:
        nonlocal table, lists
        if table:
            head, *rows = table
            body.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            body.extend("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append("</tbody></table>")
            table = []
        body.extend(["</ul>"] * lists)
        lists = 0

    for line in markdown.splitlines():
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
            continue
        if line.lstrip().startswith("- "):
            if table:
                flush()
            level = 1 + (len(line) - len(line.lstrip())) // 2
            while lists < level:
                body.append("<ul>")
                lists += 1
            while lists > level:
                body.append("</ul>")
                lists -= 1
            body.append(f"<li>{inline(line.lstrip()[2:])}</li>")
            continue
        flush()
        heading = re.match(r"^(#{1,3}) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            if picture and level == 1:
                body.append(picture)
                picture = ""
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    style = (
        "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "text-align:left;vertical-align:top}code{background:#f4f4f4;padding:0 .2rem}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
