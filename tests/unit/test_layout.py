"""The tree keeps its shape: no module of the product over 300 lines (migrations aside), so each stays one job."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The product's code: the core and every adapter. Tests, benchmarks and tooling are not held to it.
PRODUCT_FOLDERS = ("scoring", "webservice", "plugins", "dags", "lambda")
MAX_LINES = 300


def product_modules(root: Path) -> list[Path]:
    """Every .py file of the product folders below `root`, Alembic migrations aside (one revision each, generated)."""
    return sorted(
        path
        for folder in PRODUCT_FOLDERS
        for path in (root / folder).rglob("*.py")
        if "migrations" not in path.relative_to(root).parts and "__pycache__" not in path.parts
    )


def too_long(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """The product modules over `limit` lines, with their line counts."""
    counts = {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for path in product_modules(root)
    }
    return {name: lines for name, lines in counts.items() if lines > limit}


def test_no_product_module_is_over_300_lines():
    # Given every module of scoring/, webservice/, plugins/, dags/ and lambda/ (migrations aside)
    modules = product_modules(ROOT)
    assert len(modules) > 50, "the product folders were not found"
    # Then none is over 300 lines: split it by job (see README's architecture section), not by arbitrary cuts
    assert too_long(ROOT) == {}


@pytest.mark.parametrize(
    ("where", "lines", "caught"),
    [
        ("scoring/model/big.py", 301, True),
        ("lambda/build.py", 400, True),
        ("scoring/model/fits.py", 300, False),
        ("scoring/batch/store/migrations/versions/0001_first.py", 900, False),
        ("bench/long.py", 900, False),
    ],
)
def test_the_limit_catches_a_long_product_module_and_spares_migrations_and_tools(tmp_path, where, lines, caught):
    # Given a tree with one module of the given length
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text("x = 1\n" * lines)
    # Then the check names it exactly when it is product code over the limit
    assert too_long(tmp_path) == ({where: lines} if caught else {})
