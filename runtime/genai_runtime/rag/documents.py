"""Load files into langchain ``Document``s with a ``source`` and user metadata.

Supported: plain text and Markdown (kept as written), HTML (text only, via BeautifulSoup) and PDF
(one document per page, via pypdf). User metadata such as ``year`` comes from a sidecar file
``NAME.metadata.json`` holding ``{"metadataAttributes": {...}}`` (the Bedrock knowledge-base
convention), or, for S3 objects, from the object's user metadata.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from langchain_core.documents import Document

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
SIDECAR_SUFFIX = ".metadata.json"
MetadataValue = str | int | float | bool
# Set by loading and chunking: a user's value would be overwritten.
RESERVED_KEYS = frozenset({"source", "page", "chunk", "passage", "section", "start_index", "content_hash"})
MAX_KEY_LENGTH = 128
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")  # canonical, ASCII, at most 18 digits: fits a 64-bit long


class UnsupportedDocument(UsageError):
    """A file the loaders cannot read (unknown type, bad encoding, broken PDF)."""


def is_document(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.endswith(SIDECAR_SUFFIX)


def find_documents(paths: Iterable[str | Path]) -> list[Path]:
    """Every supported file among ``paths`` (folders are walked), sorted, without duplicates."""
    found: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.update(p.resolve() for p in path.rglob("*") if p.is_file() and is_document(p))
        elif path.is_file():
            if not is_document(path):
                raise UnsupportedDocument(
                    f"{path}: unsupported file type {path.suffix or '(none)'}; "
                    f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
                )
            found.add(path.resolve())
        else:
            raise UsageError(f"{path}: no such file or folder")
    return sorted(found)


def coerce_metadata(raw: Mapping[str, object], origin: str) -> dict[str, MetadataValue]:
    """Metadata as the index stores it, from a sidecar's ``metadataAttributes`` or S3 user metadata.

    Keys: ``-`` becomes ``_`` (S3 hands ``x-amz-meta-doc-type`` over as ``doc-type``, which is
    stored and filtered as ``doc_type``); what is then not an identifier is refused, as are two keys
    that become the same and the keys ingestion sets itself (``RESERVED_KEYS``).
    Values: a string that is a decimal integer written the one way ``str(int)`` writes it (``0`` or
    ``-?[1-9][0-9]*`` in ASCII digits, at most 18 of them, so it fits an OpenSearch ``long``) becomes
    an int, so ``year=2022`` filters match; every other string stays a string (``"-"``, ``"--5"``,
    ``"007"``, ``"-0"``, ``" 5"``). Numbers must be finite and integers fit 64 bits. Anything else,
    and every bad key, raises ``UsageError``.
    """
    metadata: dict[str, MetadataValue] = {}
    given: dict[str, object] = {}
    for key, value in raw.items():
        name = metadata_key(key, origin)
        if name in given:
            raise UsageError(f"{origin}: metadata keys {given[name]!r} and {key!r} are both {name!r}: keep one")
        given[name] = key
        metadata[name] = metadata_value(name, value, origin)
    return metadata


def metadata_key(key: object, origin: str) -> str:
    """A metadata key as stored: hyphens as underscores, then a Python identifier (see ``coerce_metadata``)."""
    if not isinstance(key, str):
        raise UsageError(f"{origin}: metadata key {_shown(key)} is invalid: keys are strings")
    name = key.replace("-", "_")
    if not name.isidentifier() or len(name) > MAX_KEY_LENGTH:
        raise UsageError(
            f"{origin}: metadata key {_shown(key)} is invalid: use letters, digits, _ and -, "
            f"not starting with a digit, at most {MAX_KEY_LENGTH} characters"
        )
    if name in RESERVED_KEYS:
        raise UsageError(
            f"{origin}: metadata key {key!r} is reserved: ingestion sets {', '.join(sorted(RESERVED_KEYS))}"
        )
    return name


def metadata_value(name: str, value: object, origin: str) -> MetadataValue:
    if isinstance(value, str):
        return int(value) if _INTEGER.fullmatch(value) else value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise UsageError(f"{origin}: metadata {name}={_shown(value)} is invalid: integers must fit 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{origin}: metadata {name}={value!r} is invalid: numbers must be finite")
        return value
    raise UsageError(f"{origin}: metadata {name}={_shown(value)} is invalid: use a string, number or boolean")


def _shown(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sidecar_metadata(path: Path) -> dict[str, MetadataValue]:
    """The metadata of ``path``'s sidecar ``NAME.metadata.json`` (``{}`` where there is none)."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    expected = '{"metadataAttributes": {...}}'
    try:
        document = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # unreadable, not UTF-8, not JSON, an integer too long to parse
        raise UsageError(f"{sidecar}: expected {expected}: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{sidecar}: expected {expected}, not a JSON {type(document).__name__}")
    unknown = sorted(set(document) - {"metadataAttributes"})
    if unknown:
        raise UsageError(f"{sidecar}: unknown key(s) {', '.join(map(repr, unknown))}; expected {expected}")
    attributes = document.get("metadataAttributes", {})
    if not isinstance(attributes, dict):
        raise UsageError(f"{sidecar}: metadataAttributes must be an object")
    return coerce_metadata(attributes, str(sidecar))


def load_file(
    path: Path, source: str | None = None, metadata: Mapping[str, MetadataValue] | None = None
) -> list[Document]:
    """The documents of one file; ``source`` defaults to the file's absolute path."""
    source = source or str(path.resolve())
    extra = dict(metadata) if metadata is not None else sidecar_metadata(path)
    suffix = path.suffix.lower()
    try:
        pages = list(_load(path, suffix))
    except UnsupportedDocument:
        raise
    except Exception as error:  # noqa: BLE001 - every parser failure becomes one clear message
        raise UnsupportedDocument(f"{source}: cannot read {suffix} file: {type(error).__name__}: {error}") from None
    documents = []
    for page, document in enumerate(pages):
        document.metadata = {**extra, "source": source}
        if suffix in PDF_SUFFIXES:
            document.metadata["page"] = page
        documents.append(document)
    return documents


def _load(path: Path, suffix: str) -> Iterator[Document]:
    if suffix in TEXT_SUFFIXES:
        from langchain_community.document_loaders import TextLoader

        yield from TextLoader(str(path), encoding="utf-8").lazy_load()
    elif suffix in HTML_SUFFIXES:
        yield html_document(path.read_text(encoding="utf-8"))
    elif suffix in PDF_SUFFIXES:
        from langchain_community.document_loaders import PyPDFLoader

        yield from PyPDFLoader(str(path)).lazy_load()
    else:
        raise UnsupportedDocument(f"{path}: unsupported file type {suffix or '(none)'}")


_HTML_BLOCKS = ["p", "div", "li", "tr", "table", "ul", "ol", "section", "article", "blockquote", "dd", "dt"]


def html_document(html: str) -> Document:
    """The text of an HTML page with its h1-h4 headings kept as Markdown ``#`` lines and ``<pre>`` fenced,
    so chunking cuts it at its sections as it cuts Markdown (BeautifulSoup, as langchain's BSHTMLLoader,
    whose flat ``get_text`` loses the headings)."""
    from bs4 import BeautifulSoup
    from langchain_core.documents import Document

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    for block in soup.find_all("pre"):
        block.replace_with(f"\n\n```\n{block.get_text()}\n```\n\n")
    for level in range(1, 5):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {' '.join(heading.get_text(' ').split())}\n\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_HTML_BLOCKS):
        block.append("\n\n" if block.name in ("p", "div", "section", "article", "table", "blockquote") else "\n")
    text = re.sub(r"[ \t]*\n[ \t]*\n\s*", "\n\n", soup.get_text()).strip()
    return Document(page_content=text, metadata={"title": title} if title else {})
