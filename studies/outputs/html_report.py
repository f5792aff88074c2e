"""`report.html`: the report in one self-contained file, for a browser.

It is `report.md` (the setup, findings, summary and differences tables with
their intervals, the definitions, the errors, the runs, the plots, the cost
and the command) rendered to HTML, with every plot inlined as a `data:` URI,
so the file can be mailed or attached on its own. The renderer knows the
Markdown `reporting.markdown` writes (headings, paragraphs, bullet lists,
pipe tables, fenced code, images, `**bold**` and `` `code` ``) and escapes
everything else: it needs no Markdown package and no network.
"""

import base64
import html
import os
import re

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; }
code, pre { font-family: ui-monospace, monospace; background: #f6f6f6; }
pre { padding: 0.75rem; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 1rem 0; }
"""
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _inline(text):
    """Escapes `text` and renders its `code` and **bold** spans."""
    parts, last = [], 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        code, bold = match.groups()
        if code is not None:
            parts.append(f"<code>{html.escape(code)}</code>")
        else:
            parts.append(f"<strong>{_inline(bold)}</strong>")
        last = match.end()
    return "".join(parts) + html.escape(text[last:])


def _cells(line):
    """The cells of a pipe-table row (`\\|` is a literal bar)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _image(alt, name, study_dir):
    """An `<img>` with the PNG `name` of `study_dir` inlined (a note if missing)."""
    path = os.path.join(study_dir, name)
    if not os.path.isfile(path):
        return f"<p><em>missing figure {html.escape(name)}</em></p>"
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    alt = html.escape(alt, quote=True)
    return f'<img alt="{alt}" title="{alt}" src="data:image/png;base64,{data}">'


def _table(rows):
    head, body = rows[0], rows[2:]  # rows[1] is the |---| line
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) for row in body]
    return out + ["</table>"]


def _kind(line):
    """What a line of report.md starts: heading, table, list, image, blank or
    paragraph."""
    if line.startswith("#"):
        return "heading"
    if line.startswith("|"):
        return "table"
    if line.startswith("- "):
        return "list"
    if _IMAGE.match(line):
        return "image"
    return "paragraph" if line.strip() else "blank"


def _blocks(text):
    """`text` split into blocks: (kind, lines) with kind code, table, list,
    heading, image or paragraph."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
            end = len(lines) if end is None else end
            blocks.append(("code", lines[i + 1 : end]))
            i = end + 1
            continue
        kind = _kind(line)
        if blocks and blocks[-1][0] == kind and kind in ("table", "list", "paragraph"):
            blocks[-1][1].append(line)
        else:  # a blank line ends the block before it
            blocks.append((kind, [line]))
        i += 1
    return [b for b in blocks if b[0] != "blank"]


def render(markdown, study_dir, title="Study report"):
    """The HTML page of `markdown` (a report.md), plots read from `study_dir`."""
    body = []
    for kind, lines in _blocks(markdown):
        if kind == "code":
            body.append("<pre><code>" + html.escape("\n".join(lines)) + "</code></pre>")
        elif kind == "heading":
            level = min(len(lines[0]) - len(lines[0].lstrip("#")), 6)
            body.append(f"<h{level}>{_inline(lines[0][level:].strip())}</h{level}>")
        elif kind == "table":
            body += _table([_cells(row) for row in lines])
        elif kind == "list":
            body += ["<ul>", *(f"<li>{_inline(x[2:])}</li>" for x in lines), "</ul>"]
        elif kind == "image":
            alt, name = _IMAGE.match(lines[0]).groups()
            body.append(_image(alt, name, study_dir))
        else:
            body.append(f"<p>{_inline(' '.join(lines))}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n"
        "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
