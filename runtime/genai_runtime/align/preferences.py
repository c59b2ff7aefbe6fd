"""Human rankings to preference pairs: ``{"prompt", "chosen", "rejected"}`` (trl's explicit-prompt format).

Three sources, each carrying one prompt and n responses ranked by people:

- **Amazon A2I human-loop output** (``output.json`` that a flow definition writes to
  ``s3://BUCKET/FLOW/YYYY/MM/DD/hh/mm/ss/HUMAN-LOOP/output.json``; SageMaker developer guide, "Amazon A2I
  output data"): ``{"flowDefinitionArn", "humanLoopName", "humanAnswers": [{"answerContent", "workerId",
  "acceptanceTime", "submissionTime", "timeSpentInSeconds", "workerMetadata"}...], "inputContent"}``.
  ``inputContent`` is what ``StartHumanLoop`` sent (``HumanLoopInput.InputContent``): here
  ``{"prompt": str, "responses": [str, ...]}``.
- **Ground Truth custom labeling job output manifest** (one JSON line per data object): the input line's
  own keys (``prompt``/``responses``, or ``source`` holding them as JSON), plus ``"<label-attribute>"`` with
  what the post-annotation (consolidation) Lambda returned and ``"<label-attribute>-metadata"`` with
  ``"type": "groundtruth/custom"``, ``job-name``, ``human-annotated``, ``creation-date``. The consolidation
  Lambda of the custom-template recipe returns ``{"annotationsFromAllWorkers": [{"workerId",
  "annotationData": {"content": "<the worker's form as a JSON string>"}}]}``; a Lambda that returns one
  answer directly (the form's fields) is read too.
- **Plain JSONL** with ``prompt``/``chosen``/``rejected`` per line (validated the same way).

The worker's answer (``answerContent``, or the form ``content``) ranks the responses, 1 = best, either as
one field per response written by the task template (``<crowd-input name="rank-0">``, ``rank-1``...: a
string or a number), or as a list ``"ranking": [rank of response 0, rank of response 1, ...]``.

**The pair rule.** A ranking A > B > C gives every ordered pair once, preferred first: (A, B), (A, C),
(B, C), i.e. n·(n−1)/2 pairs for n responses.

**Several labelers per item: each labeler's ranking yields its own pairs** (no mean-rank aggregation).
Under the Bradley-Terry model that the reward loss −log σ(r_chosen − r_rejected) fits, a pair that 2 of 3
labelers prefer one way and 1 the other is fitted towards a 2/3 preference: disagreement is kept as a soft
label. Mean ranks would throw that strength away, turn a 1-vs-1 split into a tie (which gives no pair at
all) and need a tie-breaking rule. A bad ranking from one labeler is one bad record, named; the other
labelers' pairs of the same item stay.

Every bad record is named: ``file:line`` (JSONL/manifest) or ``file[human loop NAME]`` (A2I), the worker
where there are several, the field and what was wrong (ties, ranks not a permutation of 1..n, missing
responses, chosen == rejected, empty text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

RANK_FIELD = re.compile(r"^rank[-_]?(\d+)$")
PAIR_KEYS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class BadRecord:
    """One record that gives no pairs: where it is, which field, what was wrong."""

    where: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.problem}"


@dataclass
class Conversion:
    pairs: list[dict[str, str]] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    rankings: int = 0
    """Rankings read (one per labeler per item)."""

    def extend(self, other: Conversion) -> None:
        self.pairs.extend(other.pairs)
        self.bad.extend(other.bad)
        self.rankings += other.rankings


class RecordError(UsageError):
    """What is wrong with one record's field (the converters turn it into a ``BadRecord``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def ranking_to_pairs(prompt: str, responses: Sequence[str], ranks: Sequence[int]) -> list[dict[str, str]]:
    """All n·(n−1)/2 pairs of one ranking, preferred first (``ranks[i]`` is response i's rank, 1 = best)."""
    _check_text("prompt", prompt)
    for index, response in enumerate(responses):
        _check_text(f"responses[{index}]", response)
    _check_ranks(ranks, len(responses))
    order = sorted(range(len(responses)), key=lambda i: ranks[i])
    if len({responses[i].strip() for i in order}) < len(order):
        seen: dict[str, int] = {}
        for i in order:
            if responses[i].strip() in seen:
                raise RecordError(
                    f"responses[{i}]", f"same text as responses[{seen[responses[i].strip()]}] (chosen == rejected)"
                )
            seen[responses[i].strip()] = i
    return [
        {"prompt": prompt, "chosen": responses[order[a]], "rejected": responses[order[b]]}
        for a in range(len(order))
        for b in range(a + 1, len(order))
    ]


def read_ranks(answer: Any, n: int) -> list[int]:
    """The ranks in one worker's answer: ``rank-<i>`` fields or a ``ranking`` list (1 = best)."""
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError:
            raise RecordError("answer", "not JSON") from None
    if not isinstance(answer, dict):
        raise RecordError("answer", f"expected an object, got {type(answer).__name__}")
    if "ranking" in answer:
        raw = answer["ranking"]
        if not isinstance(raw, list):
            raise RecordError("ranking", f"expected a list of {n} ranks")
        values: dict[int, Any] = dict(enumerate(raw))
        name = "ranking"
    else:
        values = {}
        for key, value in answer.items():
            match = RANK_FIELD.match(key)
            if match:
                values[int(match.group(1))] = value
        name = "rank-<i>"
        if not values:
            raise RecordError("answer", f"no ranking: expected rank-0..rank-{n - 1} fields or a 'ranking' list")
    missing = [i for i in range(n) if i not in values]
    extra = sorted(i for i in values if not 0 <= i < n)
    if missing:
        raise RecordError(name, f"no rank for responses {missing} (missing responses)")
    if extra:
        raise RecordError(name, f"ranks for responses {extra} but only {n} responses")
    ranks = []
    for i in range(n):
        try:
            ranks.append(int(str(values[i]).strip()))
        except ValueError:
            raise RecordError(
                f"rank-{i}" if name == "rank-<i>" else f"ranking[{i}]", f"{values[i]!r} is not a rank"
            ) from None
    return ranks


def _check_ranks(ranks: Sequence[int], n: int) -> None:
    if n < 2:
        raise RecordError("responses", f"{n} response(s): a ranking needs at least 2 (missing responses)")
    if len(ranks) != n:
        raise RecordError("ranks", f"{len(ranks)} ranks for {n} responses")
    tied = sorted({r for r in ranks if list(ranks).count(r) > 1})
    if tied:
        raise RecordError(
            "ranks", f"tie: rank {tied[0]} given to {list(ranks).count(tied[0])} responses ({list(ranks)})"
        )
    if sorted(ranks) != list(range(1, n + 1)):
        raise RecordError("ranks", f"{list(ranks)} is not a permutation of 1..{n}")


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise RecordError(name, "missing" if value is None else f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(name, "empty text")


def _item(record: dict[str, Any]) -> tuple[str, list[str]]:
    """Prompt and responses of an item: top-level keys, or ``source`` holding them (as JSON or an object)."""
    holder: Any = record
    if "prompt" not in record and "source" in record:
        holder = record["source"]
        if isinstance(holder, str):
            try:
                holder = json.loads(holder)
            except json.JSONDecodeError:
                raise RecordError("source", "expected JSON with prompt and responses") from None
    if not isinstance(holder, dict):
        raise RecordError("source", "expected an object with prompt and responses")
    prompt = holder.get("prompt")
    _check_text("prompt", prompt)
    responses = holder.get("responses")
    if not isinstance(responses, list):
        raise RecordError(
            "responses", "missing" if responses is None else "expected a list of texts (missing responses)"
        )
    return str(prompt), responses


# ---- sources -------------------------------------------------------------------------------------


def from_a2i(output: dict[str, Any], where: str = "output.json") -> Conversion:
    """One A2I human loop's ``output.json``: each human answer's ranking gives its pairs."""
    result = Conversion()
    loop = output.get("humanLoopName") if isinstance(output, dict) else None
    where = f"{where}[human loop {loop}]" if loop else where
    try:
        if not isinstance(output, dict):
            raise RecordError("output", "expected a JSON object")
        content = output.get("inputContent")
        if isinstance(content, str):  # InputContent is a JSON string in the API; output.json holds it parsed
            content = json.loads(content)
        if not isinstance(content, dict):
            raise RecordError("inputContent", "missing" if content is None else "expected an object")
        prompt, responses = _item(content)
    except RecordError as bad:
        result.bad.append(BadRecord(where, _field("inputContent", bad.field), bad.problem))
        return result
    except json.JSONDecodeError:
        result.bad.append(BadRecord(where, "inputContent", "not JSON"))
        return result
    answers = output.get("humanAnswers")
    if not isinstance(answers, list) or not answers:
        result.bad.append(BadRecord(where, "humanAnswers", "no human answers (has the loop completed?)"))
        return result
    for index, answer in enumerate(answers):
        worker = answer.get("workerId", index) if isinstance(answer, dict) else index
        label = f"{where} worker {worker}" if len(answers) > 1 else where
        result.rankings += 1
        try:
            if not isinstance(answer, dict) or "answerContent" not in answer:
                raise RecordError("answerContent", "missing")
            ranks = read_ranks(answer["answerContent"], len(responses))
            result.pairs.extend(ranking_to_pairs(prompt, responses, ranks))
        except RecordError as bad:
            name = (
                f"inputContent.{bad.field}"
                if bad.field.startswith(("responses", "prompt"))
                else _field(f"humanAnswers[{index}].answerContent", bad.field)
            )
            result.bad.append(BadRecord(label, name, bad.problem))
    return result


def from_ground_truth_line(record: dict[str, Any], where: str, label_attribute: str | None = None) -> Conversion:
    """One output-manifest line of a Ground Truth custom task: each worker's ranking gives its pairs."""
    result = Conversion()
    try:
        if not isinstance(record, dict):
            raise RecordError("line", "expected a JSON object")
        attribute = label_attribute or _label_attribute(record)
        if attribute not in record:
            raise RecordError(attribute, "missing (no label on this object: was it labeled?)")
        prompt, responses = _item(record)
        label = record[attribute]
        workers = _worker_answers(label, attribute)
    except RecordError as bad:
        result.bad.append(BadRecord(where, bad.field, bad.problem))
        return result
    for index, (worker, answer) in enumerate(workers):
        name = f"{where} worker {worker}" if len(workers) > 1 else where
        result.rankings += 1
        try:
            result.pairs.extend(ranking_to_pairs(prompt, responses, read_ranks(answer, len(responses))))
        except RecordError as bad:
            path = (
                f"{attribute}.annotationsFromAllWorkers[{index}].annotationData.content"
                if isinstance(label, dict) and "annotationsFromAllWorkers" in label
                else attribute
            )
            result.bad.append(
                BadRecord(
                    name, bad.field if bad.field.startswith("responses") else _field(path, bad.field), bad.problem
                )
            )
    return result


def _label_attribute(record: dict[str, Any]) -> str:
    found = [
        key[: -len("-metadata")]
        for key, value in record.items()
        if key.endswith("-metadata")
        and isinstance(value, dict)
        and str(value.get("type", "")).startswith("groundtruth/")
    ]
    if len(found) != 1:
        raise RecordError(
            "<label-attribute>-metadata",
            "no Ground Truth label metadata (type groundtruth/...)"
            if not found
            else f"several label attributes {found}; pass the one to read",
        )
    return found[0]


def _worker_answers(label: Any, attribute: str) -> list[tuple[str, Any]]:
    if isinstance(label, dict) and "annotationsFromAllWorkers" in label:
        workers = label["annotationsFromAllWorkers"]
        if not isinstance(workers, list) or not workers:
            raise RecordError(f"{attribute}.annotationsFromAllWorkers", "no worker annotations")
        answers = []
        for index, worker in enumerate(workers):
            try:
                content = worker["annotationData"]["content"]
            except (KeyError, TypeError):
                raise RecordError(
                    f"{attribute}.annotationsFromAllWorkers[{index}].annotationData.content", "missing"
                ) from None
            answers.append((str(worker.get("workerId", index)), content))
        return answers
    return [("0", label)]  # a consolidation Lambda that returned the form's fields itself


def from_pairs_line(record: Any, where: str) -> Conversion:
    result = Conversion(rankings=1)
    try:
        if not isinstance(record, dict):
            raise RecordError("line", "expected a JSON object")
        for key in PAIR_KEYS:
            _check_text(key, record.get(key))
        if record["chosen"].strip() == record["rejected"].strip():
            raise RecordError("rejected", "same text as chosen (chosen == rejected)")
    except RecordError as bad:
        result.bad.append(BadRecord(where, bad.field, bad.problem))
        return result
    result.pairs.append({key: record[key] for key in PAIR_KEYS})
    return result


def _field(prefix: str, name: str) -> str:
    return prefix if name in ("answer", prefix) else f"{prefix}.{name}"


# ---- files ---------------------------------------------------------------------------------------


def convert_paths(paths: Iterable[str | Path], label_attribute: str | None = None) -> Conversion:
    """Convert every file (folders: their ``*.json``, ``*.jsonl``, ``*.manifest``, recursively).

    A ``.json`` file holding one object is an A2I ``output.json``; a JSON-lines file is read line by line,
    each line a Ground Truth manifest line (it has a ``-metadata`` key or ``responses``) or a plain pair.
    """
    result = Conversion()
    for path in _files(paths):
        result.extend(convert_file(path, label_attribute))
    return result


def convert_file(path: Path, label_attribute: str | None = None) -> Conversion:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            return from_a2i(document, str(path))
    result = Conversion()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            result.bad.append(BadRecord(where, "line", f"not JSON ({error.msg})"))
            continue
        if isinstance(record, dict) and ("humanAnswers" in record or "humanLoopName" in record):
            result.extend(from_a2i(record, where))
        elif isinstance(record, dict) and (
            "responses" in record or "source" in record or any(k.endswith("-metadata") for k in record)
        ):
            result.extend(from_ground_truth_line(record, where, label_attribute))
        else:
            result.extend(from_pairs_line(record, where))
    return result


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".manifest"))
            if not found:
                raise UsageError(f"{path}: no .json, .jsonl or .manifest files in this folder")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise UsageError(f"{path}: no such file or folder")


def read_pairs(path: str | Path) -> list[dict[str, str]]:
    """Validated preference pairs from a JSONL file or a folder of them (a training channel); a
    ``UsageError`` names the first bad records."""
    result = convert_paths([path])
    if result.bad:
        shown = "; ".join(str(b) for b in result.bad[:5])
        more = f" (and {len(result.bad) - 5} more)" if len(result.bad) > 5 else ""
        raise UsageError(f"{len(result.bad)} bad preference record(s): {shown}{more}")
    if not result.pairs:
        raise UsageError(f"{path}: no preference pairs")
    return result.pairs


def write_pairs(pairs: Iterable[dict[str, str]], out: str | Path) -> int:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps({key: pair[key] for key in PAIR_KEYS}) + "\n")
            count += 1
    return count


def split_by_prompt(
    pairs: Sequence[dict[str, str]], validation_fraction: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Train and held-out pairs, split by prompt: every pair of one prompt lands on the same side, so a
    held-out score is never measured on responses the model was trained on for the same prompt."""
    import random

    prompts = sorted({p["prompt"] for p in pairs})
    random.Random(seed).shuffle(prompts)
    if validation_fraction <= 0:
        return list(pairs), []
    held = max(1, round(len(prompts) * validation_fraction))
    if held >= len(prompts):
        raise UsageError(
            f"data.validation_fraction={validation_fraction}: {len(prompts)} prompt(s) leave none to train on"
        )
    held_out = set(prompts[:held])
    return [p for p in pairs if p["prompt"] not in held_out], [p for p in pairs if p["prompt"] in held_out]
