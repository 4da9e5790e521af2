"""A bundle's reference profile. It lives in scoring.model.reference, because a bundle carries it and the
model kernel loads and verifies it; monitoring code keeps importing it from here."""

from scoring.model.reference import (
    KINDS,
    PROFILE_VERSION,
    TEXT_FEATURE_KINDS,
    TOP_CATEGORIES,
    ColumnProfile,
    Kind,
    NumberProfile,
    ReferenceProfile,
    TextProfile,
    input_kinds,
)

__all__ = [
    "KINDS",
    "PROFILE_VERSION",
    "TEXT_FEATURE_KINDS",
    "TOP_CATEGORIES",
    "ColumnProfile",
    "Kind",
    "NumberProfile",
    "ReferenceProfile",
    "TextProfile",
    "input_kinds",
]
