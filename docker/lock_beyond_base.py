"""Print the pins of a lock file for the packages a base image does not hold (docker/airflow.Dockerfile).

    python lock_beyond_base.py BASE_FREEZE LOCK > beyond-base.txt

The Airflow image keeps every package of its base at the base's version (Airflow and its providers were
released together); what the project adds on top (scikit-learn, skops, ...) is installed at the lock's
version, as everywhere else, instead of the newest release on build day. Names are compared as pip
compares them (PEP 503: case, '-', '_' and '.' alike).
"""

from __future__ import annotations

import re
import sys


def canonical(name: str) -> str:
    """A distribution name as pip compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_name(line: str) -> str | None:
    """The package a `name==version` line pins (extras and comments ignored), else None."""
    text = line.split("#", 1)[0].strip()
    if "==" not in text:
        return None
    return canonical(text.split("==", 1)[0].split("[", 1)[0].strip())


def beyond_base(base_freeze: list[str], lock: list[str]) -> list[str]:
    """The lock's pin lines whose package is not in the base image's `pip list --format=freeze`."""
    held = {name for line in base_freeze if (name := pinned_name(line))}
    return [line for line in lock if (name := pinned_name(line)) and name not in held]


def main(argv: list[str]) -> int:
    base_path, lock_path = argv
    with open(base_path) as base, open(lock_path) as lock:
        kept = beyond_base(base.read().splitlines(), lock.read().splitlines())
    sys.stdout.write("".join(f"{line}\n" for line in kept))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
