"""`scoring model import|profile|show`: turn an existing model into a bundle, add a reference profile to one,
and show a verified bundle's manifest."""

from __future__ import annotations

import argparse
import json

from scoring.settings import Settings

REFERENCE_HELP = (
    "a Parquet or CSV sample of the training inputs: the bundle keeps their profile and that of its predictions "
    "on them, which monitoring compares every partition and hour of traffic with"
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `model import`, `model profile` and `model show`."""
    model = commands.add_parser("model", help="model bundles").add_subparsers(dest="model_command")
    imp = model.add_parser(
        "import",
        help="turn an existing model (pickle, MLflow model folder, runs:/ or models:/ URI) into a bundle",
    )
    imp.add_argument(
        "source",
        help="a pickled (DictVectorizer, estimator) tuple or Pipeline, a local MLflow model folder, "
        "runs:/RUN_ID/PATH, models:/NAME/VERSION or models:/NAME@ALIAS (with MLFLOW_TRACKING_URI)",
    )
    imp.add_argument("--name", help="model name (default: the registered model's name; required otherwise)")
    imp.add_argument("--version", help="model version (default: the registered version; required otherwise)")
    imp.add_argument("--features", help="a preset declaration, e.g. ride_pu_do (default: inferred from the model)")
    imp.add_argument(
        "--derive",
        action="append",
        default=[],
        metavar="EXPR",
        help="a feature joining inputs, e.g. 'PU_DO=PULocationID+\"_\"+DOLocationID' (repeatable)",
    )
    imp.add_argument("--sample", help="a Parquet or CSV file whose column types type the inputs")
    imp.add_argument("--id-field", help="field naming each record (default: ride_id for the ride presets, else id)")
    imp.add_argument("--require-id", action="store_true", help="a batch file without the id column fails fast")
    imp.add_argument("--output", help="name of the predicted field (default: by task, e.g. duration, probability)")
    imp.add_argument("--returns", choices=("value", "probability", "label", "probabilities"))
    imp.add_argument("--positive-class", help="a binary classifier's class whose probability is returned")
    imp.add_argument("--format", choices=("pickle", "skops"), help="the bundle's serialization (default: the source's)")
    imp.add_argument("--dest", help="bundle directory (default models/NAME/VERSION)")
    imp.add_argument("--reference", metavar="FILE", help=REFERENCE_HELP)
    imp.set_defaults(handler=_model_import)
    profile = model.add_parser(
        "profile", help="add a reference profile (for drift monitoring) to an existing bundle, re-signing it"
    )
    profile.add_argument("uri", nargs="?", help="bundle directory (default SCORING_MODEL_URI)")
    profile.add_argument("--reference", metavar="FILE", required=True, help=REFERENCE_HELP)
    profile.set_defaults(handler=_model_profile)
    show = model.add_parser("show", help="print a bundle's manifest after verifying it")
    show.add_argument("uri", nargs="?", help="bundle directory (default SCORING_MODEL_URI)")
    show.set_defaults(handler=_model_show)


def _model_import(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.importing import ImportRequest, import_source
    from scoring.model.trust import BundleTrust

    request = ImportRequest(
        source=args.source,
        name=args.name,
        version=args.version,
        features=args.features,
        derive=tuple(args.derive),
        sample=args.sample,
        # Left out, the id field takes the manifest's default (scoring.model.bundle).
        **({"id_field": args.id_field} if args.id_field else {}),
        require_id=args.require_id,
        output=args.output,
        returns=args.returns,
        positive_class=args.positive_class,
        serialization=args.format,
        reference=args.reference,
    )
    manifest, dest = import_source(request, args.dest, key=BundleTrust.from_settings(settings).key)
    inputs = ", ".join(f"{spec.name} ({spec.type})" for spec in manifest.inputs)
    print(
        f"imported {manifest.name} v{manifest.version} ({manifest.format}, {manifest.serialization}, "
        f"{manifest.task} -> {manifest.returns}, sha256 {manifest.sha256[:12]}) -> {dest}; inputs: {inputs}"
        + ("; with a reference profile" if manifest.reference else "")
    )
    return 0


def _model_profile(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.importing import add_reference
    from scoring.model.trust import BundleTrust

    uri = args.uri or settings.model_uri
    manifest = add_reference(uri, args.reference, BundleTrust.from_settings(settings))
    signed = "re-signed" if manifest.signature else "unsigned"
    print(f"added a reference profile to {manifest.name} v{manifest.version} at {uri} ({signed})")
    return 0


def _model_show(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.bundle import load_bundle
    from scoring.model.trust import BundleTrust

    bundle = load_bundle(args.uri or settings.model_uri, BundleTrust.from_settings(settings))
    print(json.dumps(bundle.manifest.to_json(), indent=2))
    return 0
