"""Which bundles may be loaded at all: trusted roots, and an optional signing key.

A pickle runs code when it is loaded, and the sha256 in `model.json` only proves the artifact is
the one its manifest names: whoever writes the manifest chooses that hash. So trust comes from
where a bundle lives, not from what it says about itself. A bundle loads only from below one of
the configured roots (local folders, s3:// prefixes), checked before a byte of it is read; a local
path is resolved first, so neither `..` nor a symlink leads out of a root. With a key, a bundle
must also carry an HMAC made at import over its manifest, which pins the artifact's sha256, so a
bundle written into a root by anyone without the key is refused as well.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoring.errors import ModelLoadError, UntrustedBundle
from scoring.settings import Settings

SIGNATURE_KEY = "signature"
SIGNATURE_SCHEME = "hmac-sha256:"


@dataclass(frozen=True)
class BundleTrust:
    """The roots bundles may load from, and the key their manifests must be signed with (if any)."""

    roots: tuple[str, ...]
    key: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BundleTrust:
        """SCORING_MODEL_ROOTS (or the folder of SCORING_MODEL_URI) and SCORING_BUNDLE_KEY."""
        key = settings.bundle_key.encode() if settings.bundle_key else None
        return cls(roots=settings.trusted_model_roots, key=key)

    @classmethod
    def of_bundle(cls, uri: str, key: bytes | None = None) -> BundleTrust:
        """Trust exactly one bundle folder: for tools and tests that were handed the bundle by its owner."""
        return cls(roots=(uri,), key=key)

    def locate(self, uri: str) -> str:
        """Where to read the bundle at `uri` from, once it is known to lie below a root; reads nothing.

        A local path comes back resolved, and every read goes through that resolved path: checking one
        path and reading another would let a symlink swapped in between lead out of the root.
        """
        if uri.startswith("s3://"):
            if any(root.startswith("s3://") and _s3_is_below(uri, root) for root in self.roots):
                return uri
        else:
            resolved = os.path.realpath(uri)
            if any(not root.startswith("s3://") and _local_is_below(resolved, root) for root in self.roots):
                return resolved
        raise UntrustedBundle(
            f"bundle {shown_uri(uri)} is outside the trusted model roots ({', '.join(self.roots) or 'none'}); "
            "set SCORING_MODEL_ROOTS to allow it"
        )

    def check_signature(self, manifest: Mapping[str, Any], where: str) -> None:
        """With a key, UntrustedBundle unless the manifest carries this key's signature of itself."""
        if self.key is None:
            return
        given = manifest.get(SIGNATURE_KEY)
        if not isinstance(given, str) or not given.startswith(SIGNATURE_SCHEME):
            raise UntrustedBundle(f"{where} is not signed, and SCORING_BUNDLE_KEY requires a signed bundle")
        if not hmac.compare_digest(given, sign_manifest(manifest, self.key)):
            raise UntrustedBundle(f"{where} has a signature that SCORING_BUNDLE_KEY does not verify; refusing it")


def sign_manifest(manifest: Mapping[str, Any], key: bytes) -> str:
    """The HMAC-SHA256 of the manifest's canonical JSON, without its own signature field."""
    unsigned = {name: value for name, value in manifest.items() if name != SIGNATURE_KEY}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return SIGNATURE_SCHEME + hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _local_is_below(resolved: str, root: str) -> bool:
    base = os.path.realpath(root)
    return resolved == base or resolved.startswith(base.rstrip(os.sep) + os.sep)


def read_without_links(path: str) -> bytes:
    """A local file's bytes, refusing a symlink in its last component (the folder is already resolved)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedBundle(
                f"{shown_uri(path)} is a symbolic link; bundle files are read without following links"
            ) from None
        raise
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def _s3_is_below(uri: str, root: str) -> bool:
    bucket, _, key = uri[len("s3://") :].partition("/")
    root_bucket, _, root_key = root[len("s3://") :].partition("/")
    segments = key.rstrip("/").split("/")
    # S3 keys are plain strings: '..' is not resolved by S3, but a path-minded reader of the URI would be fooled.
    if not bucket or any(segment in ("", ".", "..") for segment in segments):
        return False
    prefix = root_key.strip("/")
    return bucket == root_bucket and (not prefix or key.rstrip("/") == prefix or key.startswith(prefix + "/"))


def shown_uri(uri: str) -> str:
    """The URI as an error may show it: bounded, and without control characters a log could be forged with."""
    printable = "".join(ch if ch.isprintable() else "?" for ch in uri)
    return printable if len(printable) <= 200 else printable[:197] + "..."


def require_plain_file_name(name: object, where: str) -> str:
    """A file name inside the bundle folder: no separators, no '..', nothing hidden, nothing absolute."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or any(sep in name for sep in ("/", "\\", "\x00"))
        or not name.isprintable()
        or len(name) > 255
    ):
        raise ModelLoadError(f"{where}: 'artifact' must be a plain file name inside the bundle folder")
    return name
