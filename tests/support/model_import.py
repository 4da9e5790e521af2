"""`scoring model import` as the tests drive it: through the CLI, as a user would."""

from __future__ import annotations

from pathlib import Path

from scoring.cli import main
from scoring.model.bundle import load_bundle
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust


def import_bundle(*args: str, dest: Path) -> tuple[Predictor, Manifest]:
    """Import through the CLI into `dest`; the bundle's predictor and manifest."""
    assert main(["model", "import", *args, "--dest", str(dest)]) == 0
    bundle = load_bundle(str(dest), BundleTrust.of_bundle(str(dest)))
    return Predictor(bundle), bundle.manifest


def import_fails(capsys, *args: str) -> str:
    """Run an import that must fail; its one-line message (no traceback)."""
    assert main(["model", "import", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err
