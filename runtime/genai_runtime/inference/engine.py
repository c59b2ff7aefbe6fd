"""``InferenceEngine``: load a model folder (plus named LoRA adapters), validate, generate.

One worker thread owns the model, so concurrent callers never interleave inside ``generate``.
Non-streaming requests that queue up while a batch runs, and share adapter and parameters, are
batched into one left-padded ``generate`` call (greedy outputs equal the unbatched ones). A lone
request never waits for company unless ``batch_window_ms`` asks for it.

``close(timeout)`` finishes queued work for up to ``timeout`` seconds; ``abort()`` (the end of a
server's drain grace) answers every request still queued or running with a 503 and stops the
running ``generate`` at its next token. Each future is settled once, under a lock, whichever of the
worker, ``abort()`` and a cancelling caller gets there first; the worker survives all of them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import UsageError
from .schema import GenerationParameters, InferenceRequest, RequestError, too_long

log = logging.getLogger(__name__)
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(eq=False)  # compared by identity: unsettled jobs live in a set
class _Job:
    texts: list[str]
    parameters: GenerationParameters
    adapter: str | None
    future: Future = field(default_factory=Future)
    streamer: Any = None  # a transformers TextIteratorStreamer, for a streamed request

    @property
    def key(self) -> tuple[str | None, str]:
        return self.adapter, self.parameters.key()


def find_adapters(adapters_dir: Path) -> dict[str, Path]:
    """Adapter name -> folder, for each sub-folder of ``adapters_dir`` that holds a PEFT adapter."""
    if not adapters_dir.is_dir():
        raise UsageError(f"--adapters={adapters_dir}: not a folder")
    found = {p.name: p for p in sorted(adapters_dir.iterdir()) if (p / "adapter_config.json").is_file()}
    if not found:
        raise UsageError(f"--adapters={adapters_dir}: no sub-folder holds an adapter_config.json")
    bad = [name for name in found if not _ADAPTER_NAME.match(name)]
    if bad:
        raise UsageError(f"--adapters: adapter folder names {bad} must be letters, digits, '.', '_' or '-'")
    return found


class InferenceEngine:
    def __init__(
        self,
        model_dir: str | Path,
        adapters_dir: str | Path | None = None,
        *,
        max_batch_size: int = 8,
        batch_window_ms: float = 0.0,
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise UsageError(f"--model={model_dir}: not a model folder (no config.json)")
        if max_batch_size < 1:
            raise UsageError(f"max_batch_size={max_batch_size}: must be at least 1")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.float32 if self.device == "cpu" else "auto"
        # transformers types .to() as a decorator-wrapped method that wants the model itself.
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device)  # type: ignore[arg-type]
        self.adapters: list[str] = []
        if adapters_dir is not None:
            from peft import PeftModel

            found = find_adapters(Path(adapters_dir))
            names = list(found)
            model = PeftModel.from_pretrained(model, found[names[0]], adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(found[name], adapter_name=name)
            self.adapters = names
        self.model = model.eval()
        config = self.model.config
        self.context_length = int(
            cast(Any, getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 2048))
        )
        self.max_batch_size = max_batch_size
        self.batch_window = batch_window_ms / 1000.0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._backlog: collections.deque[_Job] = collections.deque()
        self._closed = False
        self._settling = threading.Lock()  # the worker, abort() and callers race to settle a job's future
        self._unsettled: set[_Job] = set()
        self._aborted = threading.Event()  # read by generate's stopping criterion at every token
        self._worker = threading.Thread(target=self._loop, name="genai-inference", daemon=True)
        self.batches_run = 0
        self.generate_seconds = 0.0  # time spent inside model.generate, for overhead accounting
        self._worker.start()

    # ---- public API ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._worker.is_alive() and not self._closed

    def generate(self, request: InferenceRequest) -> list[dict[str, str]]:
        """``[{"generated_text": ...}]``, one per input, in order."""
        return self.submit(request).result()

    def submit(self, request: InferenceRequest) -> Future:
        """Validate and tokenize ``request`` (in the caller's thread), queue it; its future's result."""
        job = self._job(request)
        self._enqueue(job)
        return job.future

    def stream(self, request: InferenceRequest) -> Iterator[str]:
        """Yield text pieces as tokens are generated (one input per streaming request)."""
        from transformers import TextIteratorStreamer

        if len(request.texts) != 1:
            raise RequestError(400, "inputs: streaming takes exactly one input text")
        job = self._job(request)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        job.streamer = streamer
        self._enqueue(job)
        return self._stream_pieces(job, streamer)

    def close(self, timeout: float = 30.0) -> None:
        """Take no new work; finish queued work for up to ``timeout`` s, then ``abort()`` the rest."""
        self._stop_taking_work()
        self._worker.join(timeout)
        if self._worker.is_alive():
            self.abort()
            self._worker.join(5.0)  # generate stops at its next token; queued jobs are skipped

    def abort(self, message: str = "the server is shutting down; retry the request") -> int:
        """Answer every request still queued or running with ``RequestError(503, message)``; how many."""
        self._stop_taking_work()
        self._aborted.set()
        error = RequestError(503, message)
        with self._settling:
            jobs, self._unsettled = self._unsettled, set()
            answered = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
                    answered += 1
                if job.streamer is not None:  # wake the reader; it re-raises the 503 from the future
                    job.streamer.on_finalized_text("", stream_end=True)
        return answered

    def _stop_taking_work(self) -> None:
        with self._settling:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)  # after every job _enqueue let in: it checks _closed under the same lock

    def _enqueue(self, job: _Job) -> None:
        with self._settling:
            if self._closed:  # again: close() may have run while this request was tokenized
                raise RequestError(503, "the server is shutting down; retry the request")
            self._unsettled.add(job)
            self._queue.put(job)

    def _settle(
        self, job: _Job, result: list[dict[str, str]] | None = None, error: BaseException | None = None
    ) -> None:
        with self._settling:
            self._unsettled.discard(job)
            if job.future.done():  # abort() answered it, or its caller cancelled it
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    # ---- validation ---------------------------------------------------------------------------

    def _job(self, request: InferenceRequest) -> _Job:
        if self._closed:
            raise RequestError(503, "the server is shutting down")
        if request.adapter is not None and request.adapter not in self.adapters:
            available = self.adapters or "none (start the server with --adapters DIR)"
            raise RequestError(400, f"adapter: {request.adapter!r} is not loaded; available: {available}")
        budget = self.context_length - request.parameters.max_new_tokens
        lengths = [len(ids) for ids in self.tokenizer(request.texts)["input_ids"]]
        for index, length in enumerate(lengths):
            if length > budget:
                raise too_long(request, index, length, self.context_length)
        return _Job(request.texts, request.parameters, request.adapter)

    # ---- worker -------------------------------------------------------------------------------

    def _next(self, timeout: float | None) -> _Job | None:
        if self._backlog:
            return self._backlog.popleft()
        return self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()

    def _next_now(self) -> _Job | None:
        if self._backlog:
            return self._backlog.popleft()
        return self._queue.get_nowait()

    def _loop(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            batch = [job]
            try:
                if job.streamer is None:
                    batch += self._gather(job)
                self._run(batch)
            except Exception as error:  # the worker outlives any one batch; its callers get the error
                log.exception("inference worker: a batch failed")
                for failed in batch:
                    self._settle(failed, error=error)
                    if failed.streamer is not None:  # wake its reader, which re-raises the error
                        failed.streamer.on_finalized_text("", stream_end=True)

    def _gather(self, first: _Job) -> list[_Job]:
        """Jobs that can join ``first``'s batch, waiting at most the batch window."""
        joined: list[_Job] = []
        size = len(first.texts)
        deadline = time.monotonic() + self.batch_window
        skipped: list[_Job | None] = []  # None: the stop sentinel, put back
        while size < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                job = self._next(remaining) if remaining > 0 else self._next_now()
            except queue.Empty:
                break
            if job is None:
                skipped.append(job)
                break
            if job.streamer is None and job.key == first.key and size + len(job.texts) <= self.max_batch_size:
                joined.append(job)
                size += len(job.texts)
            else:
                skipped.append(job)
        for job in reversed(skipped):
            if job is None:
                self._queue.put(None)
            else:
                self._backlog.appendleft(job)
        return joined

    def _run(self, batch: list[_Job]) -> None:
        with self._settling:
            # Skip what abort() answered or a caller cancelled while it queued; the rest can no longer be cancelled.
            live = [job for job in batch if not job.future.done() and job.future.set_running_or_notify_cancel()]
        for job in batch:
            if job not in live:
                self._settle(job)
        if not live or self._aborted.is_set():
            return
        first = live[0]
        texts = [text for job in live for text in job.texts]
        started = time.perf_counter()
        try:
            outputs = self._generate(texts, first.parameters, first.adapter, first.streamer)
        except Exception as error:  # surfaced to every caller of the batch
            log.exception("generation failed")
            for job in live:
                self._settle(job, error=error)
            if first.streamer is not None:
                first.streamer.on_finalized_text("", stream_end=True)
            return
        self.batches_run += 1
        self.generate_seconds += time.perf_counter() - started
        start = 0
        for job in live:
            end = start + len(job.texts)
            self._settle(job, result=[{"generated_text": text} for text in outputs[start:end]])
            start = end

    def _generate(self, texts: list[str], parameters: GenerationParameters, adapter: str | None, streamer) -> list[str]:
        import torch

        encoded = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        kwargs = {
            "max_new_tokens": parameters.max_new_tokens,
            "do_sample": parameters.do_sample,
            "repetition_penalty": parameters.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if parameters.do_sample:
            kwargs.update(temperature=parameters.temperature, top_p=parameters.top_p, top_k=parameters.top_k)
        else:  # greedy: neutralise sampling settings a checkpoint's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if parameters.stop:
            kwargs.update(stop_strings=parameters.stop, tokenizer=self.tokenizer)
        if streamer is not None:
            kwargs["streamer"] = streamer
        kwargs["stopping_criteria"] = _stop_on(self._aborted)
        with torch.inference_mode(), self._adapter(adapter):
            if parameters.seed is not None:
                torch.manual_seed(parameters.seed)
            output = self.model.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [truncate_at_stop(text, parameters.stop) for text in decoded]

    def _adapter(self, adapter: str | None):
        if not self.adapters:
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def _stream_pieces(self, job: _Job, streamer) -> Iterator[str]:
        emitted = ""
        for piece in streamer:
            if not piece:
                continue
            emitted += piece
            cut = truncate_at_stop(emitted, job.parameters.stop)
            if len(cut) < len(emitted):  # a stop string appeared: emit up to it and finish
                tail = cut[len(emitted) - len(piece) :] if len(cut) > len(emitted) - len(piece) else ""
                if tail:
                    yield tail
                break
            yield piece
        job.future.result()  # re-raise a generation error after the stream ends


def _stop_on(event: threading.Event):
    """A stopping criterion that ends ``generate`` at the next token once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut ``text`` before the first stop string, as the endpoint returns it."""
    cut = len(text)
    for marker in stop:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]
