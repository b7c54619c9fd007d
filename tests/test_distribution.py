"""The distribution name: free on PyPI, and the same in pyproject, README and docs."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import eventstore

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "pg-eventstore"
# `pip install NAME` or `pip install "NAME[extras]"`, not an editable install.
PIP_INSTALL = re.compile(
    r"""pip install\s+["']?([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?["']?"""
)


def test_pyproject_names_the_distribution_and_its_own_extras_by_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == DISTRIBUTION
    assert (
        f"{DISTRIBUTION}[postgres,test]"
        in project["project"]["optional-dependencies"]["dev"]
    )


def test_the_installed_version_is_the_distributions() -> None:
    assert eventstore.__version__ == version(DISTRIBUTION)
    assert eventstore.__version__ != "0.0.0"


def test_readme_and_docs_install_the_distribution_never_the_unrelated_eventstore() -> (
    None
):
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = {
        (page.name, name)
        for page in pages
        for name in PIP_INSTALL.findall(page.read_text(encoding="utf-8"))
        if name not in {"-e", "-q"}
    }
    ours = {name for _, name in named if "eventstore" in name}
    assert ours == {DISTRIBUTION}, named
    assert ("README.md", DISTRIBUTION) in named
