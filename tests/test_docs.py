"""The README and the documentation site's sources agree with the code: every
relative link of the README resolves, every study has its page in the site's
navigation, and the version is written once."""

import os
import re

import pytest

from studies.science import definitions


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """No Keras here: skip conftest's per-test clear_session (0.3 s each)."""
    yield


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def test_every_relative_link_of_the_readme_resolves():
    readme = _read("README.md")
    links = re.findall(r"\]\(([^)#\s]+)[^)]*\)", readme)
    local = [link for link in links if not link.startswith(("http:", "https:"))]
    assert "docs/index.md" in local and "LICENSE" in local
    assert [
        link for link in local if not os.path.exists(os.path.join(ROOT, link))
    ] == []


def test_the_readme_starts_with_the_two_fresh_machine_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", _read("README.md"), re.S)
    assert blocks[0].endswith(
        'pip install -e ".[studies]" && python -m studies lr --preset quick'
    )
    assert blocks[1].endswith('pip install -e ".[dev]" && python -m pytest')


def test_every_study_has_a_generated_page_in_the_navigation():
    nav = _read("mkdocs.yml")
    for name in definitions.STUDIES:
        page = _read("docs", "studies", f"{name}.md")
        assert f"<!-- study: {name} -->" in page.splitlines()
        assert f"studies/{name}.md" in nav


def test_the_version_is_written_once():
    (version,) = re.findall(r'__version__ = "([^"]+)"', _read("kbn", "_version.py"))
    pyproject = _read("pyproject.toml")
    assert 'dynamic = ["version"]' in pyproject and version not in pyproject
    assert 'version = { attr = "kbn._version.__version__" }' in pyproject
