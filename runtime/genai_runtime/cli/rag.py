"""``genai rag ingest|query|serve``: build a vector index from files, ask it questions, keep it warm.

Defaults are the measured ones (``bench/results/rag.json``) and come from the modules that own them,
which this module imports only when a command runs: ``genai rag query`` must start fast.
"""

from __future__ import annotations

import argparse
import json

from ._args import fraction_or_bound, non_negative_int, positive_int

# Mirrors of genai_contracts.chunking's and genai_contracts.api_requests' defaults (tests/rag/test_chunking.py
# checks they agree): importing those modules here would load langchain for ``genai --help``.
CHUNK_SIZE = 1200
CHUNK_OVERLAP = 150
FETCH_K = 50


def _filter(text: str) -> tuple[str, str | int | float | bool]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier() or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. year=2022)")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("rag", help="retrieval-augmented generation: ingest documents, query them")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ingest = sub.add_parser("ingest", help="chunk, embed and index files (text, Markdown, HTML, PDF); idempotent")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked recursively)")
    ingest.add_argument(
        "--index",
        required=True,
        metavar="DIR_OR_URL",
        help="a folder (FAISS, created if missing) or https://HOST/INDEX (OpenSearch)",
    )
    ingest.add_argument(
        "--chunk-size",
        type=positive_int,
        default=CHUNK_SIZE,
        help=f"characters per passage, cut at headings first (default: {CHUNK_SIZE})",
    )
    ingest.add_argument(
        "--chunk-overlap",
        type=non_negative_int,
        default=CHUNK_OVERLAP,
        help=f"characters shared by neighbouring passages of one section (default: {CHUNK_OVERLAP})",
    )
    ingest.add_argument(
        "--embeddings",
        default="local",
        help="local | local:PATH | sagemaker:ENDPOINT | bedrock:MODEL_ID (default: local MiniLM)",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(run=_ingest)

    query = sub.add_parser("query", help="retrieve the passages that answer a question, and generate an answer")
    query.add_argument("question")
    _retrieval_arguments(query)
    query.add_argument("--json", action="store_true", help="print JSON instead of text")
    query.set_defaults(run=_query)

    serve = sub.add_parser("serve", help="keep an index and its model warm behind POST /query (127.0.0.1)")
    _retrieval_arguments(serve, search=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; no auth)")
    serve.add_argument("--port", type=positive_int, default=8090, help="port (default: 8090)")
    serve.set_defaults(run=_serve)


def _retrieval_arguments(query: argparse.ArgumentParser, search: bool = True) -> None:
    query.add_argument("--index", required=True, metavar="DIR_OR_URL", help="as given to genai rag ingest")
    query.add_argument("--embeddings", default="local", help="the embeddings the index was built with")
    query.add_argument(
        "--generate",
        metavar="URL_OR_MODEL",
        help="http(s)://HOST:PORT of genai serve, sagemaker:ENDPOINT or bedrock:MODEL_ID",
    )
    query.add_argument("--max-new-tokens", type=positive_int, default=256, help="answer length (default: 256)")
    if not search:
        return
    query.add_argument("--k", type=positive_int, default=3, help="chunks to retrieve (default: 3)")
    query.add_argument(
        "--search",
        choices=("hybrid", "similarity", "mmr"),
        default=None,
        help="hybrid (BM25 + vectors, the default for a folder), similarity or mmr",
    )
    query.add_argument("--mmr", action="store_true", help="shorthand for --search mmr")
    query.add_argument(
        "--fetch-k", type=positive_int, default=FETCH_K, help=f"candidates for MMR/hybrid (default: {FETCH_K})"
    )
    query.add_argument(
        "--lambda-mult",
        type=fraction_or_bound,
        default=0.5,
        help="MMR: 1 = relevance only, 0 = diversity only (default: 0.5)",
    )
    query.add_argument(
        "--filter",
        type=_filter,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep chunks whose metadata matches; repeat for several",
    )


def _ingest(args: argparse.Namespace) -> int:
    from ..rag.chunking import validate_chunking
    from ..rag.embeddings import LazyEmbeddings
    from ..rag.index import open_index
    from ..rag.ingest import ingest_paths

    validate_chunking(args.chunk_size, args.chunk_overlap)
    embeddings = LazyEmbeddings(args.embeddings)  # a re-run with nothing new never loads the model
    index = open_index(args.index, args.embeddings, create=True)
    report = ingest_paths(
        args.paths,
        index,
        embeddings,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        progress=not args.no_progress,
    )
    print(f"{args.index}: {report.summary()}")
    _prepare_fast_queries(args.embeddings)
    for reason in (report.failed[source] for source in sorted(report.failed)):
        print(f"  failed: {reason}")
    return 1 if report.failed else 0


def _prepare_fast_queries(spec: str) -> None:
    """Export the local model's ONNX graph now, while ingestion has torch loaded, so queries start fast."""
    from ..rag.embeddings import embeddings_from_spec, parse_spec
    from ..rag.local_embeddings import LocalEmbeddings

    if parse_spec(spec)[0] == "local":
        embeddings = embeddings_from_spec(spec)
        if isinstance(embeddings, LocalEmbeddings):
            embeddings.prepare_fast_queries()


def _chain(args: argparse.Namespace):
    from ..rag.chain import RagChain
    from ..rag.embeddings import embeddings_from_spec, parse_spec
    from ..rag.generate import GenerationSettings, generator_from_spec
    from ..rag.index import open_index

    parse_spec(args.embeddings)
    generator = None
    if args.generate:
        generator = generator_from_spec(args.generate, GenerationSettings(max_new_tokens=args.max_new_tokens))
    return RagChain(open_index(args.index, args.embeddings), embeddings_from_spec(args.embeddings), generator)


def _serve(args: argparse.Namespace) -> int:
    from ..rag.server import serve

    chain = _chain(args)
    chain.retrieve("warm up the model and the keyword index")
    serve(chain, args.host, args.port)
    return 0


def _query(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..errors import UsageError
    from ..rag.chain import validate_question
    from ..rag.search import SearchOptions

    validate_question(args.question)
    try:
        options = SearchOptions(
            k=args.k,
            fetch_k=max(args.fetch_k, args.k),
            lambda_mult=args.lambda_mult,
            search_type="mmr" if args.mmr else (args.search or "hybrid"),
            filter=dict(args.filter),
        )
    except ValidationError as error:
        raise UsageError("; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from None
    answer = _chain(args)(args.question, options)
    if args.json:
        print(json.dumps(answer.to_json(), indent=2, ensure_ascii=False))
        return 0
    for n, chunk in enumerate(answer.sources, start=1):
        print(f"[{n}] score={chunk.score:.4f} source={chunk.source}")
        print("    " + chunk.text.replace("\n", "\n    "))
    if answer.answer is not None:
        print(f"\nAnswer: {answer.answer}")
    return 0
