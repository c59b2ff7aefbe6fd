"""Augmentation and generation: the prompt, the generators' wire formats, and the CLI."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from genai_runtime.errors import UsageError
from genai_runtime.rag.chain import RagChain
from genai_runtime.rag.generate import BedrockGenerator, GenerationError, ServeGenerator, generator_from_spec
from genai_runtime.rag.search import SearchOptions


def test_chain_augments_the_prompt_with_retrieved_chunks_and_returns_sources(corpus_index, embeddings):
    prompts = []

    def generator(prompt: str) -> str:
        prompts.append(prompt)
        return " 32 NeuronCores. "

    chain = RagChain(corpus_index, embeddings, generator)
    answer = chain("How many NeuronCores does a trn1.32xlarge have?", SearchOptions(k=2))
    assert answer.answer == "32 NeuronCores."
    assert prompts[0].startswith("Use the following pieces of context")
    assert "[1] " in prompts[0] and "[2] " in prompts[0]
    assert "32 NeuronCores" in prompts[0]
    assert prompts[0].rstrip().endswith("Question: How many NeuronCores does a trn1.32xlarge have?\nHelpful Answer:")
    payload = answer.to_json()
    assert payload["sources"][0]["source"].endswith("trainium.txt")
    assert "content_hash" not in payload["sources"][0]["metadata"]


@pytest.mark.parametrize(
    ("question", "options", "message"),
    [
        ("   ", None, "question is empty"),
        ("x" * 5000, None, "the limit is 4000"),
        ("fine?", SearchOptions(filter={"colour": "red"}), "unknown metadata field.*colour; known fields: chunk"),
    ],
)
def test_chain_refuses_bad_questions(corpus_index, embeddings, question, options, message):
    with pytest.raises(UsageError, match=message):
        RagChain(corpus_index, embeddings)(question, options)


class _Lmi(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        _Lmi.bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        status, reply = (200, [{"generated_text": "an answer"}]) if self.path == "/invocations" else (404, {})
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_serve_generator_speaks_the_lmi_contract():
    server = HTTPServer(("127.0.0.1", 0), _Lmi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert generator_from_spec(url)("the prompt") == "an answer"
        path, body = _Lmi.bodies[-1]
        assert path == "/invocations"
        assert body == {
            "inputs": "the prompt",
            "parameters": {"max_new_tokens": 256, "temperature": 0.1, "do_sample": False},
        }
        with pytest.raises(GenerationError, match="HTTP 404"):
            ServeGenerator(url + "/missing")("x")
    finally:
        server.shutdown()
    with pytest.raises(GenerationError, match="cannot reach the model server"):
        ServeGenerator(url, timeout_s=2)("x")


def test_bedrock_generator_calls_converse():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Bedrock says hi"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 3, "outputTokens": 3, "totalTokens": 6},
                "metrics": {"latencyMs": 10},
            },
            {
                "modelId": "anthropic.claude-3-haiku",
                "messages": [{"role": "user", "content": [{"text": "q"}]}],
                "inferenceConfig": {"maxTokens": 256, "temperature": 0.1},
            },
        )
        assert BedrockGenerator("anthropic.claude-3-haiku", client=client)("q") == "Bedrock says hi"


def test_sagemaker_embeddings_batch_and_normalise():
    from genai_runtime.rag.embeddings import SageMakerEmbeddings

    class Runtime:
        calls = []

        def invoke_endpoint(self, **request):
            texts = json.loads(request["Body"])["inputs"]
            Runtime.calls.append((request["EndpointName"], len(texts)))
            return {"Body": io.BytesIO(json.dumps([[3.0, 4.0]] * len(texts)).encode())}

    vectors = SageMakerEmbeddings("embedder", client=Runtime(), batch_size=2).embed_documents(["a", "b", "c"])
    assert Runtime.calls == [("embedder", 2), ("embedder", 1)]
    assert vectors[0] == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize("spec", ["ftp://x", "sagemaker:", "claude", "bedrock"])
def test_bad_generator_specs_are_refused(spec):
    with pytest.raises(UsageError, match="generate=.* is invalid"):
        generator_from_spec(spec)


def test_a_bare_bedrock_model_id_selects_bedrock():
    generator = generator_from_spec("anthropic.claude-3-haiku-20240307-v1:0")
    assert isinstance(generator, BedrockGenerator) and generator.model_id == "anthropic.claude-3-haiku-20240307-v1:0"


def test_cli_ingest_is_idempotent_and_query_prints_sources(tmp_path, capsys):
    from genai_runtime.cli import main

    from .conftest import CORPUS

    index = str(tmp_path / "index")
    assert main(["rag", "ingest", str(CORPUS), "--index", index, "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "13 documents:" in first and "0 unchanged" in first
    assert main(["rag", "ingest", str(CORPUS), "--index", index, "--no-progress"]) == 0
    assert "0 added, 0 updated, " in capsys.readouterr().out
    assert (
        main(
            [
                "rag",
                "query",
                "Are shadow variant responses returned to callers?",
                "--index",
                index,
                "--k",
                "2",
                "--filter",
                "year=2021",
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["answer"] is None
    assert payload["sources"][0]["source"].endswith("variants.txt")
    assert {s["metadata"]["year"] for s in payload["sources"]} == {2021}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "q", "--index", "{index}", "--filter", "year"], "is not KEY=VALUE"),
        (["query", "q", "--index", "{index}", "--lambda-mult", "2"], "must lie between 0 and 1"),
        (["query", "", "--index", "{index}"], "question is empty"),
        (["query", "q", "--index", "{index}", "--embeddings", "openai"], "embeddings='openai' is invalid"),
        (
            ["ingest", "{index}", "--index", "{index}", "--chunk-size", "10", "--chunk-overlap", "10"],
            "chunk_overlap=10 is invalid",
        ),
        (["query", "q", "--index", "{index}/missing"], "no index here"),
        (["query", "q", "--index", "https://host/a/b"], "use https://HOST/INDEX_NAME"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line_reason(args, message, tmp_path, capsys):
    from genai_runtime.cli import main

    argv = ["rag", *[a.replace("{index}", str(tmp_path)) for a in args]]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
