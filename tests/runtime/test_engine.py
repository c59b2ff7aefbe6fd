"""The inference core: contract, batching, stop strings, seeds, adapters, limits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from genai_runtime.inference.schema import RequestError, parse_request

PROMPTS = ["Summarize the following conversation.", "#Person1#: Hi", "The quick brown fox", "Fine-tuning with LoRA"]


def _generate(engine, inputs, **parameters):
    return engine.generate(parse_request({"inputs": inputs, "parameters": {"max_new_tokens": 6, **parameters}}))


def test_one_generated_text_per_input_in_order(engine):
    single = _generate(engine, PROMPTS[0])
    assert len(single) == 1 and set(single[0]) == {"generated_text"} and single[0]["generated_text"]
    many = _generate(engine, PROMPTS)
    assert [r["generated_text"] for r in many] == [_generate(engine, p)[0]["generated_text"] for p in PROMPTS]


def test_concurrent_requests_are_batched_without_mixing_answers(engine):
    expected = {p: _generate(engine, p)[0]["generated_text"] for p in PROMPTS}
    before = engine.batches_run
    prompts = PROMPTS * 4
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda p: _generate(engine, p)[0]["generated_text"], prompts))
    assert answers == [expected[p] for p in prompts]
    assert engine.batches_run - before < len(prompts)  # some requests shared a generate call


def test_stop_strings_cut_the_output(engine):
    full = _generate(engine, PROMPTS[0], max_new_tokens=12)[0]["generated_text"]
    marker = full[3:5]
    assert marker and marker in full
    cut = _generate(engine, PROMPTS[0], max_new_tokens=12, stop=[marker])[0]["generated_text"]
    assert cut == full[: full.index(marker)]


def test_sampling_with_a_seed_is_reproducible(engine):
    params = {"do_sample": True, "temperature": 1.5, "top_k": 0, "top_p": 1.0, "seed": 7, "max_new_tokens": 10}
    first = _generate(engine, PROMPTS[1], **params)
    assert _generate(engine, PROMPTS[1], **params) == first
    others = {_generate(engine, PROMPTS[1], **{**params, "seed": s})[0]["generated_text"] for s in range(8, 12)}
    assert len(others | {first[0]["generated_text"]}) > 1


def test_adapters_select_a_tenant(engine):
    assert engine.adapters == ["tenant-a", "tenant-b"]
    request = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 8}}
    base = engine.generate(parse_request(request))
    tenant_a = engine.generate(parse_request({**request, "adapter": "tenant-a"}))
    tenant_b = engine.generate(parse_request({**request, "adapter": "tenant-b"}))
    assert len({base[0]["generated_text"], tenant_a[0]["generated_text"], tenant_b[0]["generated_text"]}) == 3
    assert engine.generate(parse_request({**request, "adapter": "tenant-a"})) == tenant_a
    assert engine.generate(parse_request(request)) == base  # the adapter is off again for base requests


def test_streaming_yields_the_same_text_piece_by_piece(engine):
    request = parse_request({"inputs": PROMPTS[2], "parameters": {"max_new_tokens": 8}})
    pieces = list(engine.stream(request))
    assert len(pieces) > 1
    assert "".join(pieces) == engine.generate(request)[0]["generated_text"]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"inputs": "x", "parameters": {"temperature": 0}}, 400, "parameters.temperature: Input should be greater"),
        ({"inputs": "x", "parameters": {"top_p": 1.5}}, 400, "parameters.top_p"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, 400, "parameters.max_new_tokens"),
        ({"inputs": "x", "parameters": {"beam_width": 4}}, 400, "parameters.beam_width: unknown field"),
        ({"inputs": "x", "temperature": 0.5}, 400, "temperature: unknown field"),
        ({"parameters": {}}, 400, "inputs: required"),
        ({"inputs": []}, 400, "give at least one input text"),
        ({"inputs": ["a"] * 33}, 400, "at most 32 inputs"),
        ({"inputs": 5}, 400, "inputs"),
        (["not", "an", "object"], 400, "must be a JSON object"),
        ({"inputs": "x", "adapter": "tenant-z"}, 400, r"adapter: 'tenant-z' is not loaded; available: \['tenant-a'"),
        ({"inputs": "word " * 400}, 413, "exceed the model's context of 256 tokens"),
        ({"inputs": "x", "parameters": {"max_new_tokens": 300}}, 413, "lower max_new_tokens"),
    ],
)
def test_bad_requests_name_the_field(engine, payload, status, message):
    with pytest.raises(RequestError, match=message) as caught:
        engine.generate(parse_request(payload))
    assert caught.value.status == status


def test_streaming_needs_a_single_input(engine):
    with pytest.raises(RequestError, match="streaming takes exactly one input"):
        engine.stream(parse_request({"inputs": ["a", "b"]}))


# ---- cancellation and the end of a drain ------------------------------------------------------


@pytest.fixture
def held_engine(tiny_model, monkeypatch):
    """A fresh engine (one input per batch) whose first ``generate`` waits for ``engine.release``."""
    import threading

    from genai_runtime.inference.engine import InferenceEngine

    engine = InferenceEngine(tiny_model, max_batch_size=1)
    engine.thread_errors = []
    monkeypatch.setattr(threading, "excepthook", engine.thread_errors.append)
    engine.in_generate, engine.release = threading.Event(), threading.Event()
    generate = engine._generate

    def held(*args):
        if not engine.in_generate.is_set():
            engine.in_generate.set()
            assert engine.release.wait(30)
        return generate(*args)

    monkeypatch.setattr(engine, "_generate", held)
    yield engine
    engine.release.set()
    engine.close()


def _request(max_new_tokens=4):
    return parse_request({"inputs": PROMPTS[0], "parameters": {"max_new_tokens": max_new_tokens}})


def test_a_request_cancelled_while_queued_is_skipped_and_the_worker_lives_on(held_engine):
    running = held_engine.submit(_request())
    assert held_engine.in_generate.wait(30)
    queued = held_engine.submit(_request())
    assert queued.cancel()  # what asyncio.wrap_future does when uvicorn cancels the request's task
    held_engine.release.set()
    assert running.result(30)[0]["generated_text"]
    assert held_engine.submit(_request()).result(30)[0]["generated_text"]  # the worker still serves
    assert held_engine.thread_errors == [] and held_engine.ready


def test_abort_answers_queued_and_running_requests_with_503_once(held_engine):
    running = held_engine.submit(_request())
    assert held_engine.in_generate.wait(30)
    queued = [held_engine.submit(_request(n)) for n in (3, 4)]
    pieces = held_engine.stream(_request())
    assert held_engine.abort("the server is shutting down; retry") == 4
    for future in [running, *queued]:
        with pytest.raises(RequestError, match="shutting down") as caught:
            future.result(30)
        assert caught.value.status == 503
    with pytest.raises(RequestError, match="shutting down"):
        list(pieces)
    with pytest.raises(RequestError, match="shutting down") as caught:
        held_engine.submit(_request())
    assert caught.value.status == 503
    held_engine.release.set()  # the running generate ends; the worker must not set its future again
    held_engine.close(30)
    assert held_engine.thread_errors == [] and not held_engine._worker.is_alive()


def test_abort_stops_a_running_generate_at_its_next_token(tiny_model, monkeypatch):
    from genai_runtime.inference.engine import InferenceEngine

    engine = InferenceEngine(tiny_model)
    lengths = []
    generate = engine.model.generate

    def generate_after_abort(**kwargs):  # the drain grace ends just as generate starts
        engine.abort()
        output = generate(**kwargs)
        lengths.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    monkeypatch.setattr(engine.model, "generate", generate_after_abort)
    future = engine.submit(_request(200))
    with pytest.raises(RequestError, match="shutting down"):
        future.result(30)
    engine.close(30)
    assert lengths == [1]
