"""The built-in study files shipped inside the package (``hpsearch/studies/*.yaml``): listing
them with their one-line question, and resolving a study argument that names one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Where the built-in study files live (package data; the repository's ``studies/`` links here).
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "studies"


@dataclass(frozen=True)
class BuiltinStudy:
    """A built-in study file: its name (file stem), path and one-line question."""

    name: str
    path: Path
    question: str


def _question(path: Path) -> str:
    """The file's first comment line without ``#``; a quoted question that goes on over the
    next comment lines is joined up to its closing quote."""
    comments = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comments.append(line.lstrip("#").strip())
    if not comments:
        return ""
    if not comments[0].startswith('"'):
        return comments[0]
    parts = []
    for part in comments:
        parts.append(part)
        if part.endswith('"') and len(" ".join(parts)) > 1:
            break
    return " ".join(parts).strip('"')


def builtin_studies() -> list[BuiltinStudy]:
    """Every built-in study file, sorted by name."""
    return [BuiltinStudy(p.stem, p, _question(p)) for p in sorted(BUILTIN_DIR.glob("*.yaml"))]


def resolve_study_path(name_or_path: str | Path) -> Path:
    """A path that exists wins; otherwise a built-in name (``quickstart`` or
    ``quickstart.yaml``) gives the packaged file; anything else is returned unchanged (the
    loader then reports it as not found)."""
    path = Path(name_or_path)
    if path.exists() or path.parent != Path("."):
        return path
    candidate = BUILTIN_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    return candidate if candidate.is_file() else path


def builtin_names() -> list[str]:
    """Names of the built-in studies."""
    return [s.name for s in builtin_studies()]
