import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs"


@pytest.mark.parametrize("page", ["schema-evolution.md", "testing.md"])
def test_python_blocks_of_the_page_run_in_order(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    namespace: dict[str, object] = {
        "__name__": f"docs_{page.split('.', maxsplit=1)[0].replace('-', '_')}"
    }
    for index, block in enumerate(blocks):
        exec(compile(block, f"{page} block {index + 1}", "exec"), namespace)  # noqa: S102 - running our own docs
