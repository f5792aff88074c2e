"""report.html's renderer: what report.md holds, escaped, the plots inlined."""

import base64

import pytest

from studies.outputs import html_report


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """No Keras here: skip conftest's per-test clear_session (0.3 s each)."""
    yield


REPORT = """# Study `lr`

## Setup

| hyperparameter | role | values |
|---|---|---|
| lr | measured axis | 0.1, 1 |
| command | fixed | `a \\| b` |

First paragraph, **bold** and <script>alert(1)</script>.

Second paragraph
on two lines.

- none: trained
- bn: trained

![accuracy](plot.png)

![gone](missing.png)

```bash
python -m studies lr --out "x<y"
```
"""


def test_blocks_are_rendered_and_everything_else_escaped(tmp_path):
    png = b"\\x89PNG\\r\\n\\x1a\\n not really"
    (tmp_path / "plot.png").write_bytes(png)
    page = html_report.render(REPORT, str(tmp_path), "Study lr")
    assert page.startswith("<!DOCTYPE html>") and "<title>Study lr</title>" in page
    assert "<h1>Study <code>lr</code></h1>" in page and "<h2>Setup</h2>" in page
    assert "<tr><th>hyperparameter</th><th>role</th><th>values</th>" in page
    assert "<td><code>a | b</code></td>" in page  # an escaped bar stays in its cell
    assert "<p>First paragraph, <strong>bold</strong> and &lt;script&gt;" in page
    assert "<p>Second paragraph on two lines.</p>" in page  # one paragraph each
    assert "<ul>\n<li>none: trained</li>\n<li>bn: trained</li>\n</ul>" in page
    inlined = base64.b64encode(png).decode("ascii")
    assert f'src="data:image/png;base64,{inlined}"' in page
    assert "missing figure missing.png" in page
    assert (
        "<pre><code>python -m studies lr --out &quot;x&lt;y&quot;</code></pre>" in page
    )
    assert "<script>" not in page
