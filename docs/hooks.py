"""mkdocs hooks: the study pages' generated part.

A line `<!-- study: NAME -->` in a page is replaced, at build time, by what
`studies.surfaces.catalog.study_markdown(NAME)` renders from the registry of
studies (its axes, its presets' values and the options that set them), so
the pages cannot disagree with `python -m studies NAME --help`.
"""

import os
import re
import sys

_MARKER = re.compile(r"^<!-- study: ([a-z-]+) -->$", re.M)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def on_page_markdown(markdown, page, config, files):
    if not _MARKER.search(markdown):
        return markdown
    if _ROOT not in sys.path:  # this checkout's studies, whatever runs mkdocs
        sys.path.insert(0, _ROOT)
    from studies.surfaces import catalog

    return _MARKER.sub(lambda m: catalog.study_markdown(m.group(1)), markdown)
