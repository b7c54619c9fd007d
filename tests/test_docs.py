"""
Every ```python block in README.md and docs/ runs, in file order, one namespace per file.

Pages whose code reads ``EVENTSTORE_DSN`` run against the test server, in a
fresh schema named by ``EVENTSTORE_SCHEMA``.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_docs_have_examples() -> None:
    assert python_blocks(ROOT / "README.md"), "README.md must show a usage example"
    assert sum(len(python_blocks(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_python_blocks_run(
    page: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(page)
    if any("EVENTSTORE_DSN" in block for block in blocks):
        monkeypatch.setenv("EVENTSTORE_DSN", request.getfixturevalue("postgres_dsn"))
        monkeypatch.setenv(
            "EVENTSTORE_SCHEMA", request.getfixturevalue("postgres_schema")
        )
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page.relative_to(ROOT)} (block {number})", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point
