"""Model artifacts as bytes: pickle (runs code when loaded) and skops (loads only the types it is told to trust).

A skops artifact is loaded with exactly the types its manifest lists, never "trust everything": a
type the file needs that is not listed is refused by name. A pickle that this scikit-learn cannot
load is refused with the version that wrote it, read from the pickle without running it.
"""

from __future__ import annotations

import io
import logging
import pickle
import pickletools
import warnings
from collections.abc import Sequence
from typing import Any

import sklearn

from scoring.errors import ModelLoadError

log = logging.getLogger(__name__)

SERIALIZATIONS = ("pickle", "skops")
_VERSION_KEY = "_sklearn_version"


def dump_artifact(obj: Any, serialization: str) -> bytes:
    """The bytes of `obj` in the given serialization."""
    if serialization == "skops":
        import skops.io

        return bytes(skops.io.dumps(obj))
    if serialization == "pickle":
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    raise ModelLoadError(f"unknown serialization {serialization!r}; expected one of {', '.join(SERIALIZATIONS)}")


def skops_types_of(data: bytes) -> list[str]:
    """The types a skops artifact needs beyond those skops trusts by default (what a manifest must list)."""
    import skops.io

    try:
        return sorted(skops.io.get_untrusted_types(data=data))
    except Exception as exc:
        raise ModelLoadError(f"not a readable skops artifact: {type(exc).__name__}") from None


def load_artifact(
    data: bytes, serialization: str, trusted_types: Sequence[str], where: str, written_with: str
) -> tuple[Any, str]:
    """The loaded object and the scikit-learn version that wrote it (as far as can be told), or ModelLoadError."""
    if serialization == "skops":
        return _load_skops(data, trusted_types, where), written_with
    if serialization == "pickle":
        return _load_pickle(data, where, written_with)
    raise ModelLoadError(f"{where}: unknown serialization {serialization!r}")


# Modules whose functions run commands, code or imports: a skops file naming one of them is an attack, not a
# model, whatever its manifest (or an MLflow MLmodel's skops_trusted_types) says to trust. A denylist, not an
# allowlist, so that a model with the team's own transformer classes still loads.
CODE_RUNNING_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "code", "codeop", "pty",
        "socket", "ctypes", "pickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib",
        "multiprocessing", "threading", "signal", "webbrowser", "pdb", "timeit", "platform",
    }
)  # fmt: skip
# Of the builtins, skops may need containers and scalars; eval, exec, getattr, open and the like never.
SAFE_BUILTINS = frozenset(
    {"builtins." + name for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                                     "str", "bytes", "bytearray", "bool", "slice", "range", "type", "object")}
)  # fmt: skip


def _runs_code(type_name: str) -> bool:
    """Whether a type name a skops file asks for lies in a module that runs code (or is a builtin function)."""
    root = type_name.split(".", 1)[0]
    return root in CODE_RUNNING_MODULES or (root == "builtins" and type_name not in SAFE_BUILTINS)


def _load_skops(data: bytes, trusted_types: Sequence[str], where: str) -> Any:
    import skops.io

    try:
        needed = skops.io.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(f"{where} is not a readable skops artifact: {type(exc).__name__}") from None
    dangerous = sorted(name for name in set(needed) if _runs_code(name))
    if dangerous:
        raise ModelLoadError(f"{where} asks for types that run code: {', '.join(dangerous)}; refusing to load it")
    untrusted = sorted(set(needed) - set(trusted_types))
    if untrusted:
        raise ModelLoadError(
            f"{where} needs types its manifest does not trust: {', '.join(untrusted)}; refusing to load it"
        )
    try:
        return skops.io.loads(data, trusted=list(trusted_types))
    except Exception as exc:
        raise ModelLoadError(f"cannot load skops artifact {where}: {type(exc).__name__}") from None


def _load_pickle(data: bytes, where: str, written_with: str) -> tuple[Any, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = pickle.load(io.BytesIO(data))
        except Exception as exc:
            original = _warned_version(caught) or pickled_sklearn_version(data)
            if original is not None and original != sklearn.__version__:
                raise ModelLoadError(
                    f"{where} was pickled by scikit-learn {original}, which scikit-learn {sklearn.__version__} "
                    f"cannot load ({type(exc).__name__}); load it with scikit-learn {original} and re-export it "
                    f"(as skops, or pickled by {sklearn.__version__})"
                ) from None
            raise ModelLoadError(f"cannot unpickle {where}: {type(exc).__name__}: {_short(str(exc))}") from None
    # scikit-learn says which version pickled an estimator when it differs from the running one.
    original = _warned_version(caught) or written_with
    if original not in ("unknown", sklearn.__version__):
        log.warning(
            "%s was written by scikit-learn %s and is loaded by %s; predictions may differ slightly",
            where,
            original,
            sklearn.__version__,
        )
    return loaded, original


def _warned_version(caught: list[warnings.WarningMessage]) -> str | None:
    originals = {str(v) for w in caught if (v := getattr(w.message, "original_sklearn_version", None))}
    return sorted(originals)[0] if originals else None


def pickled_sklearn_version(data: bytes) -> str | None:
    """The scikit-learn version an estimator pickle records, read opcode by opcode without running it."""
    previous: object = None
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if previous == _VERSION_KEY and isinstance(argument, str):
                return argument
            if "UNICODE" in opcode.name or "STRING" in opcode.name:
                previous = argument
            elif opcode.name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                previous = None
    except Exception:  # a truncated or foreign pickle: what was read so far is all there is
        return None
    return None


def _short(text: str, limit: int = 120) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."
