"""docker-compose.yml, .env.example, Dockerfiles and .dockerignore files read the way Docker reads them.

No Docker engine is needed: compose's variable interpolation, Dockerfile instructions and dockerignore
patterns are small, documented languages, implemented here just far enough for the files of this project
(anything they do not cover raises, rather than being silently misread).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"


# --- .env and interpolation ---------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file; comments and blank lines skipped, values unquoted."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path.name}:{number}: not KEY=VALUE: {line!r}")
        values[key] = value.strip().strip("'\"")
    return values


class InterpolationError(ValueError):
    """A required variable (${VAR:?...} or ${VAR?...}) has no value."""


_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Reference:
    """One ${NAME...} in the file: the operator (`:-`, `:?`, ... or empty) and its argument."""

    name: str
    op: str
    arg: str

    @property
    def has_default(self) -> bool:
        return self.op in (":-", "-")

    @property
    def is_required(self) -> bool:
        return self.op in (":?", "?")


def references(value: Any) -> list[Reference]:
    """Every variable reference in a loaded YAML value, in document order."""
    found: list[Reference] = []
    for text in _strings(value):
        for match in _REFERENCE.finditer(text):
            if match["escaped"]:
                continue
            if match["arg"] and "$" in match["arg"]:
                raise ValueError(f"nested interpolation is not supported here: {match[0]}")
            found.append(Reference(match["name"] or match["bare"], match["op"] or "", match["arg"] or ""))
    return found


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string value: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ ..."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _REFERENCE.sub(lambda match: _substitute(match, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["name"] or match["bare"]
    op, arg = match["op"] or "", match["arg"] or ""
    is_set, value = name in env, env.get(name, "")
    usable = bool(value) if op.startswith(":") else is_set
    if op in (":-", "-"):
        return value if usable else arg
    if op in (":?", "?"):
        if not usable:
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        return value
    if op in (":+", "+"):
        return arg if usable else ""
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def load_compose(env: Mapping[str, str], text: str | None = None) -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` would see it with this environment (anchors merged)."""
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text() if text is None else text), env)


# --- services ------------------------------------------------------------------------------------------------


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def argv(value: str | list[str] | None) -> list[str]:
    """A command or entrypoint as the argument vector Docker runs (a string is split like a shell would)."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    """The service's volumes in short syntax (SOURCE:TARGET[:ro])."""
    found = []
    for spec in service.get("volumes", []):
        if not isinstance(spec, str):
            raise ValueError(f"only the short volume syntax is read here: {spec!r}")
        source, target, *mode = spec.split(":")
        found.append(Mount(source, target, mode == ["ro"]))
    return found


def repo_path_of(service: Mapping[str, Any], container_path: str) -> Path | None:
    """The repository file a bind mount shows at `container_path` in this service, if any."""
    for mount in mounts(service):
        if mount.is_bind and (container_path + "/").startswith(mount.target.rstrip("/") + "/"):
            relative = container_path[len(mount.target) :].lstrip("/")
            return (ROOT / mount.source / relative).resolve()
    return None


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The healthcheck as an argument vector; CMD-SHELL strings are split like a shell would."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return shlex.split(" ".join(rest))
    raise ValueError(f"unexpected healthcheck test {test!r}")


# --- Dockerfiles -----------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]
    args: dict[str, str]

    def stages_built_for(self, target: str | None) -> list[Stage]:
        """The stages a build of `target` (default: the last stage) runs, assuming a linear chain."""
        if target is None:
            return self.stages
        names = [stage.name for stage in self.stages]
        if target not in names:
            raise ValueError(f"{self.path.name} has no stage {target!r}")
        return self.stages[: names.index(target) + 1]

    def final(self, keyword: str, target: str | None = None) -> list[str] | None:
        """The last CMD or ENTRYPOINT of the built stages, in exec form."""
        for stage in reversed(self.stages_built_for(target)):
            for instruction in reversed(stage.instructions):
                if instruction.keyword == keyword:
                    return json.loads(instruction.arguments)
        return None


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions grouped by stage, continuation lines joined, ${ARG} defaults substituted."""
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword, arguments = keyword.upper(), _expand(arguments.strip(), args)
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args.setdefault(name, default)
        elif keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            raise ValueError(f"{path.name}:{number}: {keyword} before FROM")
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments, number))
    return Dockerfile(path, stages, args)


def _expand(text: str, args: Mapping[str, str]) -> str:
    """${NAME} and $NAME for known ARGs; other variables (ENV of a base image) are left as written."""

    def known(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        return args.get(name, match[0])

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", known, text)


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None
    line: int


def copies(stages: list[Stage]) -> list[Copy]:
    """The COPY instructions of the given stages, flags stripped."""
    found = []
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            if instruction.arguments.startswith("["):
                words = json.loads(instruction.arguments)
            else:
                words = shlex.split(instruction.arguments)
            flags = {w.split("=", 1)[0]: w.partition("=")[2] for w in words if w.startswith("--")}
            paths = [w for w in words if not w.startswith("--")]
            found.append(Copy(paths[:-1], paths[-1], flags.get("--from"), instruction.line))
    return found


def image_path_source(dockerfile: Dockerfile, image_path: str, target: str | None = None) -> Path | None:
    """The repository file or folder a COPY put at `image_path` in the image, if any."""
    for copy in copies(dockerfile.stages_built_for(target)):
        if copy.from_stage is not None:
            continue
        destination = copy.destination.rstrip("/")
        for source in copy.sources:
            if image_path == destination and len(copy.sources) == 1:
                return ROOT / source
            if image_path.startswith(destination + "/"):
                remainder = image_path[len(destination) + 1 :]
                candidate = ROOT / source / remainder
                if (ROOT / source).is_dir() and candidate.exists():
                    return candidate
                if Path(source).name == remainder:
                    return ROOT / source
    return None


# --- .dockerignore ---------------------------------------------------------------------------------------------


def dockerignore_for(dockerfile: Path, context: Path = ROOT) -> list[str]:
    """BuildKit's rule: <Dockerfile>.dockerignore beside the Dockerfile wins over the context's .dockerignore."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            lines = [line.strip() for line in candidate.read_text().splitlines()]
            return [line for line in lines if line and not line.startswith("#")]
    return []


def is_excluded(relative_path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves this path out: the last matching pattern decides, and a pattern
    matching a parent folder matches everything inside it (as moby's patternmatcher does)."""
    parts = relative_path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)
