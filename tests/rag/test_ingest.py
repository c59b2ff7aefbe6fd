"""Idempotent ingestion, deletion, loaders and the on-disk index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai_runtime.errors import UsageError
from genai_runtime.rag.chunking import chunk_id, split_documents
from genai_runtime.rag.documents import find_documents, load_file
from genai_runtime.rag.faiss_index import CHUNKS_FILE, CURRENT_FILE, LOCK_FILE, VECTORS_FILE, FaissIndex
from genai_runtime.rag.ingest import ingest_paths


def counts(report) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.deleted


def test_reingest_changes_nothing_and_edits_update_only_what_changed(embeddings, corpus_copy, tmp_path):
    path = tmp_path / "index"
    first = ingest_paths([corpus_copy], FaissIndex.open(path, "local", create=True), embeddings)
    assert first.documents == 13 and first.added > 13 and not first.failed
    index = FaissIndex.open(path, "local")
    assert len(index) == first.added
    again = ingest_paths([corpus_copy], index, embeddings)
    assert counts(again) == (0, 0, first.added, 0)
    assert len(FaissIndex.open(path, "local")) == first.added

    # Edit the last paragraph of one file: only the chunks of its last passage change (its windows
    # each carry the passage's text).
    lora = corpus_copy / "lora.md"
    held = index.get_by_ids(list(index.chunk_hashes(str(lora.resolve()))))
    last = max(chunk.metadata["passage"] for chunk in held)
    in_last = sum(chunk.metadata["passage"] == last for chunk in held)
    assert in_last >= 1
    lora.write_text(lora.read_text().replace("without extra latency", "with no extra latency at all"))
    edited = ingest_paths([corpus_copy], FaissIndex.open(path, "local"), embeddings)
    assert counts(edited) == (0, in_last, first.added - in_last, 0)

    # Shrink a file to one chunk: its surplus chunks are deleted.
    held = len(FaissIndex.open(path, "local").chunk_hashes(str(lora.resolve())))
    lora.write_text("LoRA trains small low-rank matrices.")
    shrunk = ingest_paths([corpus_copy], FaissIndex.open(path, "local"), embeddings)
    assert shrunk.updated == 1 and shrunk.deleted == held - 1


def test_a_file_removed_from_an_ingested_folder_loses_its_chunks(embeddings, corpus_copy, tmp_path):
    path = tmp_path / "index"
    ingest_paths([corpus_copy], FaissIndex.open(path, "local", create=True), embeddings)
    source = str((corpus_copy / "dpo.md").resolve())
    held = len(FaissIndex.open(path, "local").chunk_hashes(source))
    assert held >= 1
    (corpus_copy / "dpo.md").unlink()
    report = ingest_paths([corpus_copy], FaissIndex.open(path, "local"), embeddings)
    assert report.deleted == held and report.added == report.updated == 0
    index = FaissIndex.open(path, "local")
    assert source not in index.sources()
    question = "Which preference tuning method needs no reward model?"
    from genai_runtime.rag.search import SearchOptions

    found = index.search(question, embeddings.embed_query(question), SearchOptions(k=5))
    assert all(Path(chunk.source).name != "dpo.md" for chunk in found)


def test_an_unreadable_file_is_reported_and_the_rest_ingested(embeddings, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("A perfectly readable document about vector search.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    report = ingest_paths([docs], FaissIndex.open(tmp_path / "index", "local", create=True), embeddings)
    assert report.added == 1
    assert set(map(lambda s: Path(s).name, report.failed)) == {"broken.pdf", "latin1.txt"}
    assert "cannot read .pdf file" in report.failed[str((docs / "broken.pdf").resolve())]


def test_loaders_read_pdf_pages_html_text_and_sidecar_metadata(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    for text in ("Page one is about Trainium.", "Page two is about Inferentia."):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.cell(text=text)
    pdf.output(str(tmp_path / "chips.pdf"))
    (tmp_path / "chips.pdf.metadata.json").write_text(json.dumps({"metadataAttributes": {"year": "2022"}}))
    pages = load_file(tmp_path / "chips.pdf")
    assert [p.metadata["page"] for p in pages] == [0, 1]
    assert "Inferentia" in pages[1].page_content
    assert pages[0].metadata["year"] == 2022  # digit strings become numbers, so year=2022 filters match
    chunks = split_documents(pages, chunk_size=512, chunk_overlap=100)
    assert [c.metadata["chunk"] for c in chunks] == [0, 1]  # numbered across pages

    (tmp_path / "page.html").write_text(
        "<html><head><script>var x = 1;</script></head><body><h1>Title</h1><p>Body <b>text</b>.</p></body></html>"
    )
    html = load_file(tmp_path / "page.html")[0].page_content
    assert "Body" in html and "<b>" not in html


def test_chunk_ids_derive_from_source_and_position(tmp_path):
    (tmp_path / "a.txt").write_text("word " * 400)
    documents = load_file(tmp_path / "a.txt", source="s3://bucket/a.txt")
    chunks = split_documents(documents, chunk_size=512, chunk_overlap=100)
    assert sorted({c.metadata["passage"] for c in chunks}) == [0, 1, 2, 3, 4]  # 5 passages, some in 2 windows
    assert [c.id for c in chunks] == [chunk_id("s3://bucket/a.txt", n) for n in range(len(chunks))]
    assert len({c.id for c in chunks}) == len(chunks)
    assert all(len(c.text) <= 512 for c in chunks)
    assert chunks == split_documents(documents, chunk_size=512, chunk_overlap=100)


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [(0, 0, "chunk_size=0 is invalid"), (100, 100, "chunk_overlap=100 is invalid"), (100, -1, "chunk_overlap=-1")],
)
def test_bad_chunking_is_refused(size, overlap, message):
    from genai_runtime.rag.chunking import validate_chunking

    with pytest.raises(UsageError, match=message):
        validate_chunking(size, overlap)


def test_unsupported_or_missing_paths_are_refused(tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"x")
    with pytest.raises(UsageError, match="unsupported file type .xlsx"):
        find_documents([tmp_path / "data.xlsx"])
    with pytest.raises(UsageError, match="no such file or folder"):
        find_documents([tmp_path / "missing"])
    (tmp_path / "bad.md").write_text("x")
    (tmp_path / "bad.md.metadata.json").write_text('{"metadataAttributes": {"year": [1]}}')
    with pytest.raises(UsageError, match="metadata year=\\[1\\] is invalid"):
        load_file(tmp_path / "bad.md")


def test_the_index_is_json_and_faiss_never_pickle_and_refuses_other_embeddings(corpus_index):
    files = sorted(p.name for p in corpus_index.path.iterdir())
    assert files == [LOCK_FILE, CURRENT_FILE, "gen-1"]  # one save: one generation
    assert (corpus_index.path / CURRENT_FILE).read_text() == "gen-1\n"
    assert sorted(p.name for p in (corpus_index.path / "gen-1").iterdir()) == [CHUNKS_FILE, VECTORS_FILE]
    saved = json.loads((corpus_index.path / "gen-1" / CHUNKS_FILE).read_text())
    assert saved["embedding_model"] == "local" and saved["dimension"] == 384
    assert saved["format"] == 2 and saved["count"] == len(saved["chunks"]) == len(corpus_index)
    with pytest.raises(UsageError, match="built with embeddings=local, not bedrock:amazon.titan"):
        FaissIndex.open(corpus_index.path, "bedrock:amazon.titan-embed-text-v2:0")
    with pytest.raises(UsageError, match="no index here"):
        FaissIndex.open(corpus_index.path / "nothing", "local")


def test_identical_chunks_are_embedded_once(tmp_path):
    from langchain_core.embeddings import Embeddings

    class Counting(Embeddings):
        texts: list[str] = []

        def embed_documents(self, texts):
            Counting.texts += texts
            return [[float(len(t)), 1.0] for t in texts]

        def embed_query(self, text):
            return [float(len(text)), 1.0]

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (docs / name).write_text("The same boilerplate footer in every file.")
    report = ingest_paths([docs], FaissIndex.open(tmp_path / "index", "local", create=True), Counting())
    assert report.added == 3
    assert Counting.texts == ["The same boilerplate footer in every file."]
