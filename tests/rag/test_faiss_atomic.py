"""The FAISS index folder: crash-atomic saves (a crash injected at every step of a save, SIGKILL at
random moments), checks that refuse a mixed pair of files, the format-1 layout and its migration,
the writer lock, and ``FaissIndex`` as a langchain ``VectorStore``.

The fault tests use deterministic hash embeddings (no model), so each crash point costs milliseconds.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from genai_runtime.errors import UsageError
from genai_runtime.rag import faiss_index
from genai_runtime.rag.faiss_index import CHUNKS_FILE, CURRENT_FILE, LOCK_FILE, VECTORS_FILE, FaissIndex, StaleIndex
from genai_runtime.rag.ingest import ingest_paths

ROOT = Path(__file__).resolve().parents[2]
# Child processes import what this one imports (the repository root first, for ``tests``).
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]),
}
MODEL = "UnitHash"
CHUNKING = {"chunk_size": 80, "chunk_overlap": 0}


class UnitHash(Embeddings):
    """A vector per text from its hash, unit length as every provider in ``rag.embeddings`` gives."""

    def __init__(self, size: int = 16) -> None:
        self._hash = DeterministicFakeEmbedding(size=size)

    @staticmethod
    def _unit(vector: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._unit(v) for v in self._hash.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self._unit(self._hash.embed_query(text))


EMBEDDINGS = UnitHash()


# ---- a small corpus whose files come, change and go from one version to the next
def write_version(docs: Path, version: int) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.iterdir():
        old.unlink()
    for j in range(5):
        if (j + version) % 4 == 0:
            continue
        words = " ".join(f"w{j}v{version % 3}n{n}" for n in range(6 + 5 * j))
        (docs / f"f{j}.txt").write_text(words)
    if (docs / "f1.txt").exists():
        (docs / "f1.txt.metadata.json").write_text(json.dumps({"metadataAttributes": {"round": version % 2}}))


def ingest(path: Path, docs: Path):
    return ingest_paths([docs], FaissIndex.open(path, MODEL, create=True), EMBEDDINGS, **CHUNKING)


def rounds(index: str, docs: str, count: str) -> None:
    """What a killed process runs: versions 0..count-1 of the corpus, each ingested and saved."""
    for version in range(int(count)):
        write_version(Path(docs), version)
        ingest(Path(index), Path(docs))


def snapshot(path: Path) -> list[tuple]:
    """Everything the index holds in vector order: id, text, metadata and the vector, bit for bit."""
    index = FaissIndex.open(path, MODEL, create=True)
    if index._store is None:
        return []
    store, documents = index._store, index._documents()
    return [
        (doc_id, documents[doc_id].page_content, documents[doc_id].metadata, store.index.reconstruct(n).tobytes())
        for n, doc_id in sorted(store.index_to_docstore_id.items())
    ]


def assert_tidy(path: Path) -> None:
    """CURRENT, the current generation, at most one older one, the lock file: nothing else."""
    entries = {entry.name for entry in path.iterdir()}
    generations = sorted(name for name in entries if name.startswith("gen-"))
    current = (path / CURRENT_FILE).read_text().strip()
    assert current in generations and len(generations) <= 2, entries
    assert entries == {CURRENT_FILE, LOCK_FILE, *generations}, entries
    for generation in generations:
        assert sorted(p.name for p in (path / generation).iterdir()) == [CHUNKS_FILE, VECTORS_FILE]


def write_format_1(index: FaissIndex, path: Path) -> None:
    """The layout saves wrote before generations: index.faiss and chunks.json at the top of the folder."""
    import faiss

    store, documents = index._store, index._documents()
    ordered = [store.index_to_docstore_id[i] for i in range(store.index.ntotal)]
    path.mkdir(parents=True)
    faiss.write_index(store.index, str(path / VECTORS_FILE))
    chunks = [{"id": i, "text": documents[i].page_content, "metadata": documents[i].metadata} for i in ordered]
    payload = {"format": 1, "embedding_model": MODEL, "dimension": store.index.d, "chunks": chunks}
    (path / CHUNKS_FILE).write_text(json.dumps(payload))


# ---- crash injection
class Crash(BaseException):
    """The process dies here: no ``except Exception`` of the code under test can catch it."""


STEPS = ("mkdir", "open", "write", "fsync", "replace", "rename", "unlink", "rmdir")


class CrashAt:
    """Counts every filesystem step of ``FaissIndex.save`` and dies at step ``at``.

    A write that dies writes half its bytes first (a torn write); after dying every further step
    dies too (closing file descriptors is left alone: the kernel does that for a dead process)."""

    def __init__(self, monkeypatch, at: int | None = None) -> None:
        self.at, self.calls, self.armed, self.dead = at, 0, False, False
        self.trace: list[str] = []
        for name in STEPS:
            monkeypatch.setattr(os, name, self._step(name, getattr(os, name)))
        real_save = FaissIndex.save

        def save(index):
            self.armed = True
            try:
                real_save(index)
            finally:
                self.armed = False

        monkeypatch.setattr(FaissIndex, "save", save)

    def _step(self, name, real):
        def step(*args, **kwargs):
            if not self.armed:
                return real(*args, **kwargs)
            if self.dead:
                raise Crash(f"{name} after the crash")
            self.calls += 1
            self.trace.append(name)
            if self.calls == self.at:
                self.dead = True
                if name == "write":
                    real(args[0], bytes(args[1])[: max(1, len(args[1]) // 2)])
                raise Crash(f"{name}, step {self.calls}")
            return real(*args, **kwargs)

        return step


def every_crash_point(tmp_path: Path, monkeypatch, make_old, new_version: int) -> list[str]:
    """Crash the save of ``new_version`` at each of its steps in turn; after each, the index must
    be the old state or the new one exactly, and a re-run must give what a clean run gives."""
    docs, template = tmp_path / "docs", tmp_path / "template"
    make_old(template, docs)
    old = snapshot(template)
    clean = tmp_path / "clean"
    if template.exists():
        shutil.copytree(template, clean)
    write_version(docs, new_version)
    with monkeypatch.context() as patch:
        counter = CrashAt(patch)
        ingest(clean, docs)
    new = snapshot(clean)
    assert new != old and counter.calls > 10
    switch = counter.trace.index("replace") + 1  # the rename of CURRENT.tmp over CURRENT
    outcomes = []
    for at in range(1, counter.calls + 1):
        path = tmp_path / f"crash-{at}"
        if template.exists():
            shutil.copytree(template, path)
        with monkeypatch.context() as patch:
            CrashAt(patch, at)
            with pytest.raises(Crash):
                ingest(path, docs)
        state = snapshot(path)  # opens: never "holds N vectors for M chunks"
        assert state in (old, new), f"crash at step {at} ({counter.trace[at - 1]}) mixed the states"
        outcomes.append("new" if state == new else "old")
        assert outcomes[-1] == ("new" if at > switch else "old"), f"step {at}: {counter.trace[at - 1]}"
        ingest(path, docs)  # the re-run
        assert snapshot(path) == new
        assert_tidy(path)
        shutil.rmtree(path)
    return counter.trace


def test_a_crash_at_any_step_of_the_first_save_leaves_no_index_or_the_whole_one(tmp_path, monkeypatch):
    def nothing(template, docs):
        write_version(docs, 0)

    trace = every_crash_point(tmp_path, monkeypatch, nothing, 0)
    assert {"mkdir", "write", "fsync", "replace"} <= set(trace)


def test_a_crash_at_any_step_of_an_update_leaves_the_old_or_the_new_index(tmp_path, monkeypatch):
    def two_saves_and_a_crashed_one(template, docs):
        for version in (0, 1):
            write_version(docs, version)
            ingest(template, docs)
        (template / "gen-3").mkdir()  # what an earlier crashed save left: removed by the next save
        (template / "gen-3" / VECTORS_FILE).write_bytes(b"torn")
        (template / f"{CURRENT_FILE}.tmp").write_text("gen-3")

    trace = every_crash_point(tmp_path, monkeypatch, two_saves_and_a_crashed_one, 2)
    assert trace.count("rmdir") >= 2  # the crashed save's folder before, the oldest generation after


def test_a_crash_at_any_step_of_migrating_the_format_1_layout(tmp_path, monkeypatch):
    def format_1(template, docs):
        write_version(docs, 0)
        ingest(tmp_path / "v0", docs)
        write_format_1(FaissIndex.open(tmp_path / "v0", MODEL), template)

    every_crash_point(tmp_path, monkeypatch, format_1, 1)


def test_sigkill_at_random_moments_then_a_rerun_gives_the_clean_index(tmp_path):
    count, docs = 5, tmp_path / "docs"
    clean = tmp_path / "clean"
    states = []
    for version in range(count):
        write_version(docs, version)
        ingest(clean, docs)
        states.append(sorted(snapshot(clean)))
    path = tmp_path / "killed"
    worker = (
        "import sys\n"
        "from genai_runtime.rag.faiss_index import FaissIndex\n"
        "from tests.rag.test_faiss_atomic import rounds\n"
        "save = FaissIndex.save\n"
        "def announced(index):\n"
        "    print('save', flush=True)\n"
        "    save(index)\n"
        "FaissIndex.save = announced\n"
        "print('ready', flush=True)\n"
        "rounds(*sys.argv[1:])\n"
    )
    chance = random.Random(20240607)
    kills = []
    for trial in range(8):
        process = subprocess.Popen(
            [sys.executable, "-c", worker, str(path), str(docs), str(count)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        if trial % 3 == 0:  # anywhere: reading files, chunking, embedding, saving
            time.sleep(chance.uniform(0, 0.25))
        else:  # inside the n-th save, a few milliseconds in
            for _ in range(chance.randrange(1, count + 1)):
                process.stdout.readline()
            time.sleep(chance.uniform(0, 0.004))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        state = sorted(snapshot(path))
        assert state == [] or state in states, f"kill {trial} left a state no version has"
        leftovers = sorted(e.name for e in path.iterdir()) if path.exists() else []
        kills.append((process.returncode, state and states.index(state), leftovers))
    assert all(code == -signal.SIGKILL for code, _, _ in kills)
    rounds(str(path), str(docs), str(count))  # the re-run
    assert sorted(snapshot(path)) == states[-1] == sorted(snapshot(clean))
    assert_tidy(path)


# ---- what a reader refuses
def build(tmp_path: Path, versions=(0, 1)) -> Path:
    path, docs = tmp_path / "index", tmp_path / "docs"
    for version in versions:
        write_version(docs, version)
        ingest(path, docs)
    return path


def current(path: Path) -> Path:
    return path / (path / CURRENT_FILE).read_text().strip()


def test_a_vectors_file_from_another_save_never_loads_with_these_chunks(tmp_path):
    path = build(tmp_path, versions=(0,))
    edited = tmp_path / "docs" / "f2.txt"
    edited.write_text(edited.read_text().replace("v0", "vX"))  # the same chunks, other texts
    ingest(path, tmp_path / "docs")
    older = sorted(p for p in path.iterdir() if p.name.startswith("gen-"))[0]
    assert len(FaissIndex.open(path, MODEL)) == json.loads((older / CHUNKS_FILE).read_text())["count"]
    shutil.copy(older / VECTORS_FILE, current(path) / VECTORS_FILE)  # same count, other vectors
    with pytest.raises(UsageError, match=r"index.faiss and chunks.json do not belong together \(vector checksum\)"):
        FaissIndex.open(path, MODEL)


def test_reordered_or_missing_chunks_are_refused(tmp_path):
    path = build(tmp_path)
    chunks_file = current(path) / CHUNKS_FILE
    saved = json.loads(chunks_file.read_text())
    original = json.dumps(saved)
    saved["chunks"][0], saved["chunks"][1] = saved["chunks"][1], saved["chunks"][0]
    chunks_file.write_text(json.dumps(saved))
    with pytest.raises(UsageError, match=r"do not belong together \(chunk id checksum\)"):
        FaissIndex.open(path, MODEL)
    saved = json.loads(original)
    del saved["chunks"][-1]
    chunks_file.write_text(json.dumps(saved))
    with pytest.raises(UsageError, match=r"chunk count, chunk id checksum"):
        FaissIndex.open(path, MODEL)
    saved = json.loads(original)
    del saved["chunks"][0]["text"]
    chunks_file.write_text(json.dumps(saved))
    with pytest.raises(UsageError, match="chunks.json: not a genai index file: KeyError 'text'"):
        FaissIndex.open(path, MODEL)
    chunks_file.write_text(original[: len(original) // 2])
    with pytest.raises(UsageError, match="chunks.json: not a genai index file"):
        FaissIndex.open(path, MODEL)


def test_current_naming_a_missing_or_bad_generation_is_refused(tmp_path):
    path = build(tmp_path, versions=(0,))
    (path / CURRENT_FILE).write_text("gen-9\n")
    with pytest.raises(UsageError, match="CURRENT names gen-9 but .*chunks.json is missing; re-ingest"):
        FaissIndex.open(path, MODEL)
    (path / CURRENT_FILE).write_text("../elsewhere\n")
    with pytest.raises(UsageError, match="names '../elsewhere', not a generation"):
        FaissIndex.open(path, MODEL)


def test_a_reader_follows_current_when_a_writer_removes_the_generation_it_was_about_to_read(tmp_path, monkeypatch):
    path = build(tmp_path, versions=(0, 1, 2))  # gen-1 was removed by the third save
    real = faiss_index._current_generation
    answers = iter(["gen-1"])  # what CURRENT said just before two saves switched it and removed gen-1
    monkeypatch.setattr(faiss_index, "_current_generation", lambda folder: next(answers, None) or real(folder))
    index = FaissIndex.open(path, MODEL)
    assert index._generation == "gen-3" and len(index) == len(snapshot(path))


def test_the_format_1_layout_is_read_and_migrated_by_the_first_save(tmp_path):
    docs = tmp_path / "docs"
    write_version(docs, 0)
    ingest(tmp_path / "v0", docs)
    old = tmp_path / "old"
    write_format_1(FaissIndex.open(tmp_path / "v0", MODEL), old)
    assert snapshot(old) == snapshot(tmp_path / "v0")
    report = ingest(old, docs)  # nothing changed, but the save migrates
    assert report.added == report.updated == report.deleted == 0
    assert_tidy(old)
    assert snapshot(old) == snapshot(tmp_path / "v0")
    assert json.loads((current(old) / CHUNKS_FILE).read_text())["format"] == 2

    broken = tmp_path / "broken"
    write_format_1(FaissIndex.open(tmp_path / "v0", MODEL), broken)
    saved = json.loads((broken / CHUNKS_FILE).read_text())
    del saved["chunks"][0]
    (broken / CHUNKS_FILE).write_text(json.dumps(saved))
    with pytest.raises(UsageError, match=r"holds (\d+) vectors for \d+ chunks; re-ingest"):
        FaissIndex.open(broken, MODEL)


def test_open_refuses_other_embeddings_a_file_and_an_empty_folder(tmp_path):
    path = build(tmp_path, versions=(0,))
    with pytest.raises(UsageError, match=f"{path} was built with embeddings={MODEL}, not local"):
        FaissIndex.open(path, "local")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        FaissIndex.open(tmp_path / "file", MODEL, create=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no index here"):
        FaissIndex.open(tmp_path / "empty", MODEL)


# ---- writers
def test_a_stale_writer_is_refused_and_rereads_instead_of_losing_the_other_writers_update(tmp_path):
    path = build(tmp_path, versions=(0,))
    first, second = (
        FaissIndex.open(path, MODEL, embeddings=EMBEDDINGS),
        FaissIndex.open(path, MODEL, embeddings=EMBEDDINGS),
    )
    first.add_texts(["from the first writer"], ids=["one"])
    first.save()
    second.add_texts(["from the second writer"], ids=["two"])
    with pytest.raises(StaleIndex, match="another writer saved gen-2 after this index was loaded"):
        second.save()
    assert second.get_by_ids(["one", "two"])[0].id == "one" and len(second.get_by_ids(["two"])) == 0
    second.add_texts(["from the second writer"], ids=["two"])
    second.save()
    assert [d.id for d in FaissIndex.open(path, MODEL).get_by_ids(["one", "two"])] == ["one", "two"]


def test_an_ingest_opened_before_another_writer_saved_starts_from_what_it_saved(tmp_path):
    path = build(tmp_path, versions=(0,))
    early = FaissIndex.open(path, MODEL)  # opened, then another ingest saves first
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("Another folder's document.")
    ingest(path, other)
    more = tmp_path / "more"
    more.mkdir()
    (more / "y.txt").write_text("A third folder's document.")
    ingest_paths([more], early, EMBEDDINGS, **CHUNKING)
    sources = {Path(s).parent.name for s in FaissIndex.open(path, MODEL).sources()}
    assert sources == {"docs", "other", "more"}


def test_two_ingest_processes_serialise_on_the_lock(tmp_path):
    path = build(tmp_path, versions=(0,))
    late = tmp_path / "late"
    late.mkdir()
    (late / "late.txt").write_text("The waiting process's document.")
    worker = (
        "import sys\n"
        "from pathlib import Path\n"
        "from genai_runtime.rag.faiss_index import FaissIndex\n"
        "from genai_runtime.rag.ingest import ingest_paths\n"
        "from tests.rag.test_faiss_atomic import CHUNKING, EMBEDDINGS, MODEL\n"
        "index = FaissIndex.open(Path(sys.argv[1]), MODEL, create=True)\n"
        "print('opened', flush=True)\n"
        "ingest_paths([sys.argv[2]], index, EMBEDDINGS, **CHUNKING)\n"
        "print('done', flush=True)\n"
    )
    holder = FaissIndex.open(path, MODEL)
    with holder.locked():  # this process is the writer now: the other one must wait for it
        process = subprocess.Popen(
            [sys.executable, "-c", worker, str(path), str(late)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "opened\n"  # it read the index as it was before our save
        time.sleep(0.4)
        assert process.poll() is None  # blocked on the lock
        early = tmp_path / "early"
        early.mkdir()
        (early / "early.txt").write_text("The lock holder's document.")
        ingest_paths([early], holder, EMBEDDINGS, **CHUNKING)  # re-entrant: saves under our lock
    assert process.stdout.readline() == "done\n" and process.wait(timeout=30) == 0
    process.stdout.close()
    sources = {Path(s).parent.name for s in FaissIndex.open(path, MODEL).sources()}
    assert sources == {"docs", "early", "late"}  # neither update lost


def test_the_lock_is_exclusive_between_open_files(tmp_path):
    path = build(tmp_path, versions=(0,))
    with FaissIndex.open(path, MODEL).locked():
        fd = os.open(path / LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(path / LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the block
    os.close(fd)


# ---- FaissIndex as a langchain VectorStore
TEXTS = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta", "iota kappa"]


def small_store(path: Path | None = None) -> FaissIndex:
    metadatas = [{"group": "a" if n % 2 else "b", "n": n} for n in range(len(TEXTS))]
    return FaissIndex.from_texts(TEXTS, EMBEDDINGS, metadatas, ids=[f"t{n}" for n in range(len(TEXTS))], path=path)


def test_it_is_a_vector_store_and_still_a_vector_index(tmp_path):
    from langchain_core.vectorstores import VectorStore

    from genai_runtime.rag.embeddings import LazyEmbeddings
    from genai_runtime.rag.index import VectorIndex

    index = small_store()
    assert isinstance(index, VectorStore) and isinstance(index, VectorIndex)
    assert index.embeddings is EMBEDDINGS and index.embedding_model == MODEL
    default = FaissIndex.open(build(tmp_path, versions=(0,)), MODEL, create=True)
    with pytest.raises(UsageError, match="embeddings='UnitHash' is invalid"):
        default.embeddings  # noqa: B018 - the default is the provider the spec names, checked when first used
    assert isinstance(FaissIndex(None, "local").embeddings, LazyEmbeddings)


def test_add_get_delete_and_search(tmp_path):
    index = small_store()
    assert len(index) == 5
    [(top, score)] = index.similarity_search_with_score("gamma delta", k=1)
    assert (top.id, top.page_content, top.metadata["group"]) == ("t1", "gamma delta", "a")
    assert score == pytest.approx(1.0, abs=1e-5)
    in_b = index.similarity_search("gamma delta", k=5, filter={"group": "b"})
    assert sorted(d.id for d in in_b) == ["t0", "t2", "t4"]
    by_vector = index.similarity_search_by_vector(EMBEDDINGS.embed_query("eta theta"), k=2)
    assert by_vector[0].id == "t3" and len(by_vector) == 2
    relevance = index.similarity_search_with_relevance_scores("eta theta", k=5)
    assert relevance[0][1] == pytest.approx(1.0, abs=1e-5) and all(0 <= r <= 1 for _, r in relevance)

    top.metadata["group"] = "changed by the caller"  # a copy: the index keeps its own
    assert index.get_by_ids(["t1"])[0].metadata["group"] == "a"
    assert [d.id for d in index.get_by_ids(["t4", "missing", "t0", "t4"])] == ["t4", "t0"]

    added = index.add_documents([Document(page_content="lambda mu", metadata={"group": "c"}, id="d1")])
    generated = index.add_texts(["nu xi"])
    assert added == ["d1"] and len(generated) == 1 and len(generated[0]) == 32
    assert index.get_by_ids(generated)[0].metadata["content_hash"]  # as ingested chunks carry
    assert index.sources() == set()  # texts without a source belong to no source
    assert index.add_texts(["lambda mu, edited"], [{"group": "c"}], ids=["d1"]) == ["d1"]  # upsert
    assert len(index) == 7 and index.get_by_ids(["d1"])[0].page_content == "lambda mu, edited"

    assert index.delete(["t0", "never held"]) is True
    assert index.get_by_ids(["t0"]) == [] and len(index) == 6
    assert index.delete() is True and len(index) == 0
    assert index.similarity_search("alpha", k=3) == [] and index.max_marginal_relevance_search("alpha") == []
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        index.add_texts(["x"], ids=["a", "b"])
    with pytest.raises(ValueError, match="chunk ids repeat"):
        index.add_texts(["x", "y"], ids=["a", "a"])
    with pytest.raises(UsageError, match="cannot be saved as JSON"):
        index.add_texts(["x"], [{"when": object()}])


def test_mmr_by_vector_and_by_query(tmp_path):
    index = small_store()
    query = EMBEDDINGS.embed_query("alpha beta")
    relevance_only = index.max_marginal_relevance_search_by_vector(query, k=3, fetch_k=5, lambda_mult=1.0)
    assert [d.id for d in relevance_only] == [d.id for d in index.similarity_search_by_vector(query, k=3)]
    diverse = index.max_marginal_relevance_search("alpha beta", k=2, fetch_k=5, lambda_mult=0.0)
    assert diverse[0].id == "t0" and len(diverse) == 2
    filtered = index.max_marginal_relevance_search_by_vector(query, k=2, fetch_k=5, filter={"group": "a"})
    assert {d.metadata["group"] for d in filtered} == {"a"}


def test_as_retriever_with_similarity_and_mmr(tmp_path):
    index = small_store()
    assert [d.id for d in index.as_retriever(search_kwargs={"k": 1}).invoke("iota kappa")] == ["t4"]
    mmr = index.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5, "lambda_mult": 0.3})
    found = mmr.invoke("iota kappa")
    assert found[0].id == "t4" and len(found) == 2
    threshold = index.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
    assert [d.id for d in threshold.invoke("iota kappa")] == ["t4"]


def test_from_texts_saves_where_told_and_reopens(tmp_path):
    path = tmp_path / "store"
    index = small_store(path)
    assert_tidy(path)
    again = FaissIndex.open(path, MODEL, embeddings=EMBEDDINGS)
    assert [d.page_content for d in again.get_by_ids(["t0", "t4"])] == ["alpha beta", "iota kappa"]
    assert again.similarity_search("epsilon zeta", k=1)[0].id == "t2"
    FaissIndex.from_texts(["omicron"], EMBEDDINGS, ids=["o"], path=path)  # adds to the index there
    assert len(FaissIndex.open(path, MODEL)) == len(index) + 1
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['persist'\\]"):
        FaissIndex.from_texts(["x"], EMBEDDINGS, persist=True)
    with pytest.raises(UsageError, match="in memory only"):
        small_store().save()


def test_the_corpus_index_retrieves_through_langchain_retrievers(corpus_index, questions):
    """Real MiniLM (the session's model): the index's own embeddings embed the query."""
    for search_type in ("similarity", "mmr"):
        retriever = corpus_index.as_retriever(search_type=search_type, search_kwargs={"k": 3, "fetch_k": 10})
        hits = 0
        for question in questions:
            found = retriever.invoke(question["question"])
            assert len(found) == 3 and all(d.id for d in found)
            hits += Path(found[0].metadata["source"]).name == question["source"]
        assert hits >= len(questions) * 0.6, (search_type, hits, len(questions))
