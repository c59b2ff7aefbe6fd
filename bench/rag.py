"""RAG: retrieval quality (hit@k) per search type, and ingestion/query speed against plain langchain.

Quality: the labelled questions of tests/data/rag over the shipped corpus, for similarity, MMR and
hybrid (BM25 + vectors, reciprocal rank fusion).

Speed, same corpus (the shipped one, 20 revisions of each file), same MiniLM embeddings object
(loaded once, before any timing), same run:
- ingestion: ``genai_runtime.rag.ingest.ingest_paths`` into a ``FaissIndex`` vs the plain path
  (langchain loaders -> ``RecursiveCharacterTextSplitter`` -> ``FAISS.from_documents`` -> ``save_local``);
  chunks per second, and our re-ingest of the unchanged corpus;
- queries: ``RagChain.retrieve`` (similarity, and hybrid) vs ``FAISS.similarity_search``, p50/p95.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from bench._common import machine, summary, write

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "rag"
REVISIONS = 20
INGEST_ROUNDS = 4  # the two paths alternate (and which goes first); each keeps its best round
QUERY_ROUNDS = 4


def replicated_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    for revision in range(REVISIONS):
        folder = corpus / f"r{revision:02d}"
        folder.mkdir(parents=True)
        for path in (DATA / "corpus").iterdir():
            if path.name.endswith(".metadata.json"):
                shutil.copy(path, folder / path.name)
            else:  # every paragraph marked, so no chunk repeats another and both paths embed the same texts
                marker = f"(r{revision}) "
                text = path.read_text().replace("<p>", "<p>" + marker).replace("\n\n", "\n\n" + marker)
                (folder / path.name).write_text(marker + text)
    return corpus


def hit_rates(index, embeddings, questions) -> dict:
    from genai_runtime.rag.search import SearchOptions

    rates = {}
    for search_type in ("similarity", "mmr", "hybrid"):
        for k in (1, 3):
            hits = 0
            for item in questions:
                found = index.search(
                    item["question"],
                    embeddings.embed_query(item["question"]),
                    SearchOptions(k=k, search_type=search_type),
                )
                hits += any(Path(c.source).name == item["source"] for c in found)
            rates[f"{search_type}_hit@{k}"] = round(hits / len(questions), 4)
    return rates


def plain_ingest(corpus: Path, embeddings, out: Path) -> tuple[float, int, object]:
    from langchain_community.document_loaders import BSHTMLLoader, TextLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    start = time.perf_counter()
    documents = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and not p.name.endswith(".metadata.json")):
        loader = (
            BSHTMLLoader(str(path), bs_kwargs={"features": "html.parser"}, get_text_separator="\n")
            if path.suffix == ".html"
            else TextLoader(str(path), encoding="utf-8")
        )
        documents.extend(loader.load())
    chunks = RecursiveCharacterTextSplitter(chunk_size=512, chunk_overlap=100).split_documents(documents)
    store = FAISS.from_documents(chunks, embeddings)
    store.save_local(str(out))
    return time.perf_counter() - start, len(chunks), store


def main() -> None:
    from genai_runtime.rag.chain import RagChain
    from genai_runtime.rag.embeddings import embeddings_from_spec
    from genai_runtime.rag.faiss_index import FaissIndex
    from genai_runtime.rag.ingest import ingest_paths
    from genai_runtime.rag.search import SearchOptions

    embeddings = embeddings_from_spec("local")
    embeddings.embed_documents(["warm up the model and its thread pool"] * 8)
    questions = json.loads((DATA / "questions.json").read_text())
    root = Path(tempfile.mkdtemp(prefix="bench-rag-"))
    plain_chunks, plain_store, report = 0, None, None
    try:
        quality_index = FaissIndex.open(root / "quality", "local", create=True)
        ingest_paths([DATA / "corpus"], quality_index, embeddings)
        quality = hit_rates(quality_index, embeddings, questions)

        corpus = replicated_corpus(root)
        plain_runs, ours_runs = [], []
        for round_ in range(INGEST_ROUNDS):

            def plain(out: Path = root / f"plain{round_}") -> None:
                nonlocal plain_chunks, plain_store
                seconds, plain_chunks, plain_store = plain_ingest(corpus, embeddings, out)
                plain_runs.append(seconds)

            def ours(out: Path = root / f"ours{round_}") -> None:
                nonlocal report
                start = time.perf_counter()
                report = ingest_paths([corpus], FaissIndex.open(out, "local", create=True), embeddings)
                ours_runs.append(time.perf_counter() - start)

            for run in (plain, ours) if round_ % 2 == 0 else (ours, plain):  # neither always goes first
                run()
        plain_s, ours_s = min(plain_runs), min(ours_runs)
        start = time.perf_counter()
        again = ingest_paths([corpus], FaissIndex.open(root / "ours0", "local"), embeddings)
        reingest_s = time.perf_counter() - start

        chain = RagChain(FaissIndex.open(root / "ours0", "local"), embeddings)
        latencies: dict[str, list[float]] = {"plain_similarity": [], "ours_similarity": [], "ours_hybrid": []}
        for _ in range(QUERY_ROUNDS):
            for item in questions:
                question = item["question"]
                start = time.perf_counter()
                plain_store.similarity_search(question, k=3)
                latencies["plain_similarity"].append(time.perf_counter() - start)
                start = time.perf_counter()
                chain.retrieve(question, SearchOptions(k=3, search_type="similarity"))
                latencies["ours_similarity"].append(time.perf_counter() - start)
                start = time.perf_counter()
                chain.retrieve(question, SearchOptions(k=3, search_type="hybrid"))
                latencies["ours_hybrid"].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "machine": machine(),
        "retrieval_quality": {"questions": len(questions), **quality},
        "ingestion": {
            "files": report.documents,
            "rounds": INGEST_ROUNDS,
            "plain_langchain": {
                "chunks": plain_chunks,
                "seconds": round(plain_s, 2),
                "chunks_per_s": round(plain_chunks / plain_s, 1),
            },
            "genai_rag_ingest": {
                "chunks": report.added,
                "seconds": round(ours_s, 2),
                "chunks_per_s": round(report.added / ours_s, 1),
            },
            "speedup": round(plain_s / ours_s, 3),
            "reingest_unchanged": {
                "seconds": round(reingest_s, 2),
                "unchanged": again.unchanged,
                "added": again.added,
                "updated": again.updated,
            },
        },
        "query_latency": {name: summary(values) for name, values in latencies.items()},
    }
    write("rag", result)


if __name__ == "__main__":
    main()
