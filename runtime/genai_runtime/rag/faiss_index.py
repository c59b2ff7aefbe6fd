"""The embedded vector index: langchain's FAISS store as a langchain-core ``VectorStore``, saved in
generations that a crash can never mix.

An index folder::

    CURRENT             the name of the current generation, e.g. ``gen-7`` (one line)
    gen-7/index.faiss   the vectors (a flat inner-product FAISS index)
    gen-7/chunks.json   the chunks in vector order, with the count and checksums that bind them to the vectors
    gen-6/              the previous generation, kept for readers that read CURRENT just before it changed
    .lock               writers hold an exclusive ``flock`` on it for ingest + save; readers take no lock

A save writes a whole new generation (each file fsynced, then its folder), then switches the one
pointer: it writes ``CURRENT.tmp``, fsyncs it, renames it over ``CURRENT`` and fsyncs the folder. A
crash at any step leaves ``CURRENT`` naming the old generation or the new one, each complete; a
generation ``CURRENT`` does not name is garbage the next save removes. A reader opens only what
``CURRENT`` names and checks the pair before using it: the vector count, and the SHA-256 of the
vectors file and of the chunk ids in order, both recorded in ``chunks.json`` (so a vectors file
from another save can never load with these chunks).

Format 1 (``index.faiss`` + ``chunks.json`` at the top of the folder, no ``CURRENT``) is still read;
the first save migrates it to a generation and removes the old files.

No pickle: ``FAISS.save_local`` pickles its docstore and ``load_local`` must then be told to trust
it. Here the chunks live in JSON and only the vectors in the FAISS file. Vectors are normalised by
every provider in ``rag.embeddings``, so the inner-product index ranks by cosine similarity.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from langchain_core.vectorstores import VectorStore

from ..errors import UsageError
from .chunking import Chunk, content_hash
from .embeddings import VectorsOnly
from .search import Retrieved, SearchOptions

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

FORMAT = 2  # what a save writes; format 1 (the flat layout) is read too
VECTORS_FILE = "index.faiss"
CHUNKS_FILE = "chunks.json"
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
GENERATION_PREFIX = "gen-"
_GENERATION = re.compile(r"gen-([0-9]{1,18})")
_WRITE_BLOCK = 1 << 20
_READ_ATTEMPTS = 5  # generations a reader follows while writers switch CURRENT under it
_WORD = re.compile(r"\w+")
logger = logging.getLogger(__name__)


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class StaleIndex(UsageError):
    """Another writer saved the folder after this index was loaded: saving would lose its changes."""


class FaissIndex(VectorStore):
    """A FAISS index in a folder: the project's ``VectorIndex`` and a langchain ``VectorStore``.

    ``embeddings`` embed texts and queries for the ``VectorStore`` methods (``add_texts``,
    ``similarity_search``, ``as_retriever``, ...); by default the provider ``embedding_model`` names,
    loaded at the first text. ``path`` is ``None`` for an index that lives in memory only.
    """

    def __init__(
        self,
        path: Path | None,
        embedding_model: str,
        store=None,
        *,
        embeddings: Embeddings | None = None,
        generation: str | None = None,
    ) -> None:
        self.path = path
        self.embedding_model = embedding_model
        self._store = store  # langchain FAISS, created at the first upsert (the dimension is unknown until then)
        self._embeddings = embeddings
        self._generation = generation  # what CURRENT named when the store was read; None: format 1 or nothing
        self._dirty = False  # changes not saved yet
        self._lock_depth = 0
        self._bm25: Any = None  # a rank_bm25.BM25Okapi, built on first keyword search
        self._by_source: dict[str, dict[str, str]] | None = None
        self._fields: set[str] | None = None

    @classmethod
    def open(
        cls, path: Path, embedding_model: str, *, create: bool = False, embeddings: Embeddings | None = None
    ) -> FaissIndex:
        """The index saved in ``path``; with ``create``, an empty one where the folder holds none."""
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path}: not a folder")
        store, generation = _read_folder(path, embedding_model)
        if store is None and not create:
            raise UsageError(
                f"{path}: no index here (no {CURRENT_FILE} or {CHUNKS_FILE}); build one with genai rag ingest"
            )
        return cls(path, embedding_model, store, embeddings=embeddings, generation=generation)

    # ---- what the index holds
    def _documents(self) -> dict[str, Document]:
        if self._store is None:
            return {}
        return self._store.docstore._dict  # noqa: SLF001 - InMemoryDocstore keeps its documents here

    def __len__(self) -> int:
        return 0 if self._store is None else self._store.index.ntotal

    def _source_map(self) -> dict[str, dict[str, str]]:
        """Source -> {chunk id: content hash}, built in one pass over the docstore and kept until a change.

        Texts added through ``add_texts`` without a ``source`` belong to no source."""
        if self._by_source is None:
            self._by_source = {}
            for doc_id, doc in self._documents().items():
                if "source" in doc.metadata:
                    self._by_source.setdefault(doc.metadata["source"], {})[doc_id] = doc.metadata["content_hash"]
        return self._by_source

    def chunk_hashes(self, source: str) -> dict[str, str]:
        return dict(self._source_map().get(source, {}))

    def sources(self) -> set[str]:
        return set(self._source_map())

    def metadata_fields(self) -> set[str]:
        if self._fields is None:  # asked on every query: computed once per change
            self._fields = set()
            for doc in self._documents().values():
                self._fields.update(doc.metadata)
            self._fields.discard("content_hash")
        return set(self._fields)

    # ---- changes
    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        if not chunks:
            return
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        ids = [chunk.id for chunk in chunks]
        if len(set(ids)) != len(ids):  # one id twice would leave a vector without a chunk
            raise ValueError(f"chunk ids repeat within one upsert: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
        if self._store is None:
            self._store = _empty_store(len(vectors[0]))
        elif len(vectors[0]) != self._store.index.d:
            raise UsageError(
                f"{self.path}: index vectors have {self._store.index.d} dimensions, "
                f"embeddings give {len(vectors[0])}: use the embeddings the index was built with"
            )
        self.delete(ids)
        self._store.add_embeddings(
            list(zip([c.text for c in chunks], [list(v) for v in vectors], strict=True)),
            metadatas=[c.metadata for c in chunks],
            ids=ids,
        )
        self._changed()

    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> bool:
        """Remove these chunks (all of them for ``None``); ids the index does not hold are ignored.

        True: none of ``ids`` is in the index any more (langchain's ``VectorStore.delete``)."""
        if kwargs:
            raise TypeError(f"delete() got unexpected keyword arguments {sorted(kwargs)}")
        documents = self._documents()
        present = list(documents) if ids is None else [i for i in ids if i in documents]
        if present and self._store is not None:
            self._store.delete(present)
            self._changed()
        return True

    def _changed(self) -> None:
        self._dirty = True
        self._bm25 = self._by_source = self._fields = None

    def _set_store(self, store, generation: str | None) -> None:
        self._store, self._generation, self._dirty = store, generation, False
        self._bm25 = self._by_source = self._fields = None

    # ---- durability
    def _folder(self) -> Path:
        if self.path is None:
            raise UsageError("this index lives in memory only: create it with a path to save it")
        return self.path

    @contextmanager
    def locked(self) -> Iterator[Self]:
        """Hold the folder's writer lock (re-entrant) for a read-modify-save: another writer waits.

        On entry the index re-reads what another writer saved since it was loaded, so changes planned
        inside the lock start from the newest state; with unsaved changes of its own it raises
        ``StaleIndex`` instead (after re-reading, so a retry starts fresh)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.warning("%s: another writer holds the index; waiting for it", folder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            self._refresh()
            yield self
        finally:
            self._lock_depth = 0
            os.close(fd)  # releases the lock

    def _refresh(self) -> None:
        folder = self._folder()
        on_disk = _current_generation(folder)
        if on_disk == self._generation:
            return
        dirty, loaded = self._dirty, self._generation or "no generation"
        self._set_store(*_read_folder(folder, self.embedding_model))
        if dirty:
            raise StaleIndex(
                f"{folder}: another writer saved {on_disk} after this index was loaded ({loaded}); "
                "its unsaved changes were dropped and the index re-read: apply them again"
            )

    def save(self) -> None:
        """Write the index as a new generation and make it current in one atomic rename (see the module doc).

        A save with nothing changed writes nothing (it only removes garbage a crash left)."""
        if self._store is None:
            return
        folder = self._folder()
        with self.locked():
            _collect_garbage(folder)
            if not self._dirty and self._generation is not None:
                return
            store = self._store
            ordered = [store.index_to_docstore_id[i] for i in range(store.index.ntotal)]
            documents = self._documents()
            vectors = _serialize(store.index)
            payload = {
                "format": FORMAT,
                "embedding_model": self.embedding_model,
                "dimension": store.index.d,
                "count": len(ordered),
                "ids_sha256": _ids_digest(ordered),
                "vectors_sha256": hashlib.sha256(vectors).hexdigest(),
                "chunks": [
                    {"id": i, "text": documents[i].page_content, "metadata": documents[i].metadata} for i in ordered
                ],
            }
            chunks = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
            generation = _next_generation(folder)
            _write_generation(folder / generation, {VECTORS_FILE: vectors, CHUNKS_FILE: chunks})
            _switch_current(folder, generation)
            self._generation, self._dirty = generation, False
            _collect_garbage(folder)

    # ---- langchain VectorStore
    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            from .embeddings import LazyEmbeddings

            self._embeddings = LazyEmbeddings(self.embedding_model)
        return self._embeddings

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed ``texts`` and upsert them under ``ids`` (a random id where none is given); not saved yet.

        Each text's metadata gets a ``content_hash`` (as ingested chunks have); give it a ``source`` to
        make it part of that source for ``chunk_hashes`` and ingestion."""
        if kwargs:
            raise TypeError(f"add_texts() got unexpected keyword arguments {sorted(kwargs)}")
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        given = ids if ids is not None else [None] * len(texts)
        chosen = [i if i else uuid.uuid4().hex for i in given]
        chunks = []
        for doc_id, text, raw in zip(chosen, texts, metadatas or [{}] * len(texts), strict=True):
            metadata = {key: value for key, value in raw.items() if key != "content_hash"}
            try:
                json.dumps(metadata, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise UsageError(f"metadata of {doc_id} cannot be saved as JSON: {error}") from None
            metadata["content_hash"] = content_hash(text, metadata)
            chunks.append(Chunk(doc_id, text, metadata))
        if chunks:
            self.upsert(chunks, self.embeddings.embed_documents(texts))
        return chosen

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """``add_texts`` of the documents, under their own ids unless ``ids=`` is given."""
        ids = kwargs.pop("ids", None) or [doc.id for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [dict(doc.metadata) for doc in documents], ids=ids, **kwargs
        )

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        documents = self._documents()
        return [_copy(documents[i]) for i in dict.fromkeys(ids) if i in documents]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | Callable | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | Callable | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` chunks nearest ``query`` with their cosine similarity (higher is nearer)."""
        return self.similarity_search_with_score_by_vector(
            self.embeddings.embed_query(query), k, filter=filter, **kwargs
        )

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | Callable | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | Callable | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """langchain FAISS's search; with a filter it ranks every vector (the index is flat anyway) to find k."""
        if self._store is None or not len(self):
            return []
        if filter is not None:
            kwargs.setdefault("fetch_k", len(self))
        hits = self._store.similarity_search_with_score_by_vector(list(embedding), k=k, filter=filter, **kwargs)
        return [(_copy(doc), float(score)) for doc, score in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | Callable | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self.embeddings.embed_query(query), k, fetch_k, lambda_mult, filter=filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | Callable | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        if self._store is None or not len(self):
            return []
        found = self._store.max_marginal_relevance_search_by_vector(
            list(embedding), k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter, **kwargs
        )
        return [_copy(doc) for doc in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] (normalised vectors, inner product) -> relevance in [0, 1]."""
        return _cosine_similarity_relevance

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | Path | None = None,
        embedding_model: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An index of ``texts``: in memory, or saved in ``path`` (added to the index already there).

        ``embedding_model`` is the spec recorded with the vectors (default: the embeddings' own
        ``spec``, else their class name); reopening checks it."""
        if kwargs:
            raise TypeError(f"from_texts() got unexpected keyword arguments {sorted(kwargs)}")
        spec = embedding_model or getattr(embedding, "spec", None) or type(embedding).__name__
        if path is None:
            index = cls(None, spec, embeddings=embedding)
            index.add_texts(texts, metadatas, ids=ids)
            return index
        index = cls(Path(path), spec, embeddings=embedding)
        with index.locked():  # reads what the folder holds, checking its embeddings
            index.add_texts(texts, metadatas, ids=ids)
            index.save()
        return index

    # ---- retrieval
    def search(self, question: str, vector: Sequence[float], options: SearchOptions) -> list[Retrieved]:  # type: ignore[override]  # noqa: E501 - the VectorIndex protocol's search, not VectorStore.search
        """Similarity, MMR or hybrid over this index's windows, one result per passage (``retrievers``)."""
        from .retrievers import search_store

        if self._store is None or not len(self):
            return []
        keyword = None
        if options.search_type == "hybrid":
            keyword = self._keyword_retriever(options.filter, options.fetch_k)
            if keyword is None:  # nothing matches the filter
                return []
        return search_store(self, question, vector, options, keyword)

    def max_marginal_relevance_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | Callable | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """langchain FAISS's MMR with each pick's similarity (a filter is applied before MMR picks)."""
        if self._store is None or not len(self):
            return []
        if filter is not None:
            fetch_k = len(self)  # flat index: rank everything so the filtered candidates are complete
        found = self._store.max_marginal_relevance_search_with_score_by_vector(
            list(embedding), k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter, **kwargs
        )
        return [(_copy(doc), float(score)) for doc, score in found]

    def _keyword_retriever(self, filter: dict, k: int):
        """langchain's BM25 over this index's passages; the unfiltered one is kept until a change."""
        from .retrievers import keyword_retriever, passages_of

        if filter:
            passages = passages_of(self._documents().values(), filter)
            return keyword_retriever(passages, k) if passages else None
        if self._bm25 is None:
            self._bm25 = keyword_retriever(passages_of(self._documents().values()), k)
        self._bm25.k = k
        return self._bm25


def _cosine_similarity_relevance(similarity: float) -> float:
    return (1.0 + similarity) / 2.0


def _copy(document: Document) -> Document:
    """A document the caller may change without changing the index."""
    return document.model_copy(update={"metadata": dict(document.metadata)})


def _empty_store(dimension: int):
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    return FAISS(
        embedding_function=VectorsOnly(),
        index=faiss.IndexFlatIP(dimension),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )


# ---- the folder on disk
def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(ids), ensure_ascii=False).encode("utf-8")).hexdigest()


def _serialize(index) -> memoryview:
    import faiss

    return faiss.serialize_index(index).data  # the array's own buffer: no copy


def _generation_number(name: str) -> int | None:
    match = _GENERATION.fullmatch(name)
    return int(match.group(1)) if match else None


def _current_generation(folder: Path) -> str | None:
    """The generation CURRENT names; None where there is no CURRENT (format 1, or no index)."""
    try:
        name = (folder / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{folder / CURRENT_FILE}: unreadable: {error}") from None
    if _generation_number(name) is None:
        raise UsageError(f"{folder / CURRENT_FILE}: names {name[:80]!r}, not a generation; re-ingest into a new index")
    return name


def _read_folder(folder: Path, embedding_model: str) -> tuple[Any, str | None]:
    """(store, generation) of what CURRENT names, else of the format-1 files; (None, None) where there is no index.

    A writer may switch CURRENT and remove the generation a reader is about to open: the reader then
    follows CURRENT to the new one."""
    generation = _current_generation(folder)
    for _ in range(_READ_ATTEMPTS):
        if generation is None and not (folder / CHUNKS_FILE).is_file():
            now = _current_generation(folder)  # a writer may have migrated the flat files meanwhile
            if now is None:
                return None, None
            generation = now
            continue
        try:
            return _load_store(folder, generation, embedding_model), generation
        except FileNotFoundError as error:
            now = _current_generation(folder)
            if now == generation:
                named = f"{CURRENT_FILE} names {generation} but " if generation else ""
                raise UsageError(f"{folder}: {named}{error.filename} is missing; re-ingest") from None
            generation = now
    raise UsageError(f"{folder}: the index changed {_READ_ATTEMPTS} times while it was read; try again")


def _load_store(root: Path, generation: str | None, embedding_model: str):
    import faiss
    from langchain_core.documents import Document

    folder = root / generation if generation else root
    chunks_file = folder / CHUNKS_FILE
    raw = chunks_file.read_bytes()
    try:
        saved = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{chunks_file}: not a genai index file: {error}") from None
    expected = 1 if generation is None else FORMAT
    if not isinstance(saved, dict) or saved.get("format") != expected:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise UsageError(
            f"{chunks_file}: index format {found!r}; this version reads format 1 (flat) and {FORMAT} (generations)"
        )
    if saved.get("embedding_model") != embedding_model:
        raise UsageError(
            f"{root} was built with embeddings={saved.get('embedding_model')}, not {embedding_model}: "
            "query with the same embeddings, or re-ingest into a new index"
        )
    vectors_file = folder / VECTORS_FILE
    vectors = vectors_file.read_bytes()
    try:
        chunks = saved["chunks"]
        ids = [c["id"] for c in chunks]
        documents = {c["id"]: Document(id=c["id"], page_content=c["text"], metadata=c["metadata"]) for c in chunks}
    except (KeyError, TypeError, ValueError) as error:  # ValueError: pydantic's, for a text or metadata of a wrong type
        reason = str(error).splitlines()[0] if str(error) else ""
        raise UsageError(f"{chunks_file}: not a genai index file: {type(error).__name__} {reason}") from None
    if generation is not None:
        broken = [
            what
            for what, ok in (
                ("vector checksum", saved.get("vectors_sha256") == hashlib.sha256(vectors).hexdigest()),
                ("chunk count", saved.get("count") == len(chunks)),
                ("chunk id checksum", saved.get("ids_sha256") == _ids_digest(ids)),
            )
            if not ok
        ]
        if broken:
            raise UsageError(
                f"{folder}: {VECTORS_FILE} and {CHUNKS_FILE} do not belong together ({', '.join(broken)}); re-ingest"
            )
    try:
        index = faiss.deserialize_index(np.frombuffer(vectors, dtype=np.uint8))
    except RuntimeError as error:
        raise UsageError(f"{vectors_file}: not a FAISS index: {str(error).splitlines()[0]}; re-ingest") from None
    if index.ntotal != len(chunks):
        raise UsageError(f"{folder}: {VECTORS_FILE} holds {index.ntotal} vectors for {len(chunks)} chunks; re-ingest")
    if index.d != saved.get("dimension") or len(set(ids)) != len(ids):
        raise UsageError(f"{chunks_file}: dimension or chunk ids disagree with {VECTORS_FILE}; re-ingest")
    store = _empty_store(index.d)
    store.index = index
    store.docstore.add(documents)
    store.index_to_docstore_id.update(dict(enumerate(ids)))
    return store


def _next_generation(folder: Path) -> str:
    numbers = [n for n in (_generation_number(entry.name) for entry in folder.iterdir()) if n is not None]
    return f"{GENERATION_PREFIX}{max(numbers, default=0) + 1}"


def _write_durably(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a new file and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            written = os.write(fd, view[:_WRITE_BLOCK])
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_generation(folder: Path, files: dict[str, bytes | memoryview]) -> None:
    os.mkdir(folder)
    for name, data in files.items():
        _write_durably(folder / name, data)
    _fsync_folder(folder)
    _fsync_folder(folder.parent)  # the generation's own entry


def _switch_current(folder: Path, generation: str) -> None:
    """The one step that changes what readers see: an atomic rename of CURRENT.tmp over CURRENT."""
    pending = folder / f"{CURRENT_FILE}.tmp"
    _write_durably(pending, f"{generation}\n".encode())
    os.replace(pending, folder / CURRENT_FILE)
    _fsync_folder(folder)


def _collect_garbage(folder: Path) -> None:
    """Remove what no reader can need (the caller holds the writer lock): every generation but the
    current one and the newest older one (a crashed save's generation is newer than the current one,
    and without CURRENT every generation is a crashed save's), stray temporary files, and the
    format-1 files once CURRENT exists."""
    if not folder.is_dir():
        return
    current = _current_generation(folder)
    number = _generation_number(current) if current else None
    generations = {e.name: n for e in folder.iterdir() if (n := _generation_number(e.name)) is not None}
    older = [n for n in generations.values() if number is not None and n < number]
    keep = {current} | {name for name, n in generations.items() if older and n == max(older)}
    leftovers = {f"{CURRENT_FILE}.tmp", f".{VECTORS_FILE}.tmp", f".{CHUNKS_FILE}.tmp"}
    if current is not None:
        leftovers |= {VECTORS_FILE, CHUNKS_FILE}
    for entry in sorted(folder.iterdir()):
        if entry.name in generations and entry.name not in keep:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        elif entry.name in leftovers and entry.is_file():
            entry.unlink()
