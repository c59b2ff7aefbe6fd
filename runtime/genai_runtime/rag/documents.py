"""Load files into langchain ``Document``s with a ``source`` and user metadata.

Supported: plain text and Markdown (kept as written), HTML (text only, via BeautifulSoup) and PDF
(one document per page, via pypdf). User metadata such as ``year`` comes from a sidecar file
``NAME.metadata.json`` holding ``{"metadataAttributes": {...}}`` (the Bedrock knowledge-base
convention), or, for S3 objects, from the object's user metadata.
"""

from __future__ import annotations

import json
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
    """Metadata values as the index stores them: numbers stay numbers, digit strings become ints."""
    metadata: dict[str, MetadataValue] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise UsageError(f"{origin}: metadata key {key!r} is invalid: use letters, digits and _")
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, str | int | float | bool):
            raise UsageError(f"{origin}: metadata {key}={value!r} is invalid: use a string, number or boolean")
        metadata[key] = value
    return metadata


def sidecar_metadata(path: Path) -> dict[str, MetadataValue]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    try:
        attributes = json.loads(sidecar.read_text(encoding="utf-8")).get("metadataAttributes", {})
    except (json.JSONDecodeError, AttributeError) as error:
        raise UsageError(f'{sidecar}: expected {{"metadataAttributes": {{...}}}}: {error}') from None
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
        from langchain_community.document_loaders import BSHTMLLoader

        yield from BSHTMLLoader(
            str(path), open_encoding="utf-8", bs_kwargs={"features": "html.parser"}, get_text_separator="\n"
        ).lazy_load()
    elif suffix in PDF_SUFFIXES:
        from langchain_community.document_loaders import PyPDFLoader

        yield from PyPDFLoader(str(path)).lazy_load()
    else:
        raise UnsupportedDocument(f"{path}: unsupported file type {suffix or '(none)'}")
