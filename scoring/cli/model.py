"""`scoring model import|show`: turn an existing model into a bundle, and show a verified bundle's manifest."""

from __future__ import annotations

import argparse
import json

from scoring import storage
from scoring.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    """Add `model import` and `model show`."""
    model = commands.add_parser("model", help="model bundles").add_subparsers(dest="model_command")
    imp = model.add_parser("import", help="turn an existing model.bin into a bundle")
    imp.add_argument("path", help="the pickled (DictVectorizer, estimator) tuple or Pipeline")
    imp.add_argument("--name", required=True)
    imp.add_argument("--version", required=True)
    imp.add_argument("--features", required=True, help="feature recipe, e.g. ride_pu_do")
    imp.add_argument("--id-field", help="field naming each record (default: the manifest default id field)")
    imp.add_argument("--output", help="name of the predicted field (default: the manifest default output name)")
    imp.add_argument("--dest", help="bundle directory (default models/NAME/VERSION)")
    imp.set_defaults(handler=_model_import)
    show = model.add_parser("show", help="print a bundle's manifest after verifying it")
    show.add_argument("uri", nargs="?", help="bundle directory (default SCORING_MODEL_URI)")
    show.set_defaults(handler=_model_show)


def _model_import(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.importing import import_model
    from scoring.model.trust import BundleTrust

    dest = args.dest or storage.join("models", args.name, args.version)
    # Left out, the id field and output name take the manifest's defaults (scoring.model.bundle).
    named = {key: value for key, value in (("id_field", args.id_field), ("output", args.output)) if value}
    manifest = import_model(
        args.path,
        dest,
        name=args.name,
        version=args.version,
        features=args.features,
        key=BundleTrust.from_settings(settings).key,
        **named,
    )
    print(f"imported {manifest.name} v{manifest.version} ({manifest.format}, sha256 {manifest.sha256[:12]}) -> {dest}")
    return 0


def _model_show(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.bundle import load_bundle
    from scoring.model.trust import BundleTrust

    bundle = load_bundle(args.uri or settings.model_uri, BundleTrust.from_settings(settings))
    print(json.dumps(bundle.manifest.to_json(), indent=2))
    return 0
