"""Instruction datasets: tabular rows (JSONL/CSV/Parquet) -> prompt/completion pairs.

Rows are spread over the template pack's phrasings, optionally mixed with general instruction
data (the book's guard against catastrophic forgetting, e.g. 5 %), and split into
train/validation/test with a fixed seed.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import UsageError
from .templates import template_pack

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a JSONL/CSV/Parquet file (or of the one such file in a folder, e.g. SM_CHANNEL_TRAIN)."""
    from datasets import load_dataset

    path = Path(path)
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.suffix in FORMATS)
        if len(candidates) != 1:
            raise UsageError(
                f"data.train={path}: expected one .jsonl/.csv/.parquet file in the folder, "
                f"found {[p.name for p in candidates]}"
            )
        path = candidates[0]
    if not path.is_file():
        raise UsageError(f"data.train={path}: no such file")
    if path.suffix not in FORMATS:
        raise UsageError(f"data.train={path}: use .jsonl, .csv or .parquet")
    dataset = load_dataset(FORMATS[path.suffix], data_files=str(path), split="train")
    return [dict(row) for row in dataset]


def to_instructions(
    rows: list[dict], template: str, input_column: str, output_column: str, seed: int = 0
) -> list[dict[str, str]]:
    """Render each row with one phrasing of the pack, cycling so every phrasing is used."""
    pack = template_pack(template)
    if rows:
        missing = [c for c in (input_column, output_column) if c not in rows[0]]
        if missing:
            raise UsageError(
                f"data: columns {missing} not in the dataset (it has {sorted(rows[0])}); "
                "set data.input_column / data.output_column"
            )
    order = list(range(len(pack)))
    random.Random(seed).shuffle(order)
    rendered = []
    for index, row in enumerate(rows):
        values = {"dialogue": row[input_column], "summary": row[output_column]}
        rendered.append(pack[order[index % len(pack)]].render(values))
    return rendered


def mix(task: list[dict], general: list[dict], ratio: float, seed: int = 0) -> list[dict]:
    """Add general examples so they make up ``ratio`` of the result (0 keeps ``task`` as is)."""
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"data.mix_ratio={ratio}: must lie in [0, 1)")
    if ratio == 0.0:
        return list(task)
    if not general:
        raise UsageError("data.mix_ratio > 0 needs data.general (instruction examples of other tasks)")
    wanted = round(len(task) * ratio / (1.0 - ratio))
    rng = random.Random(seed)
    extra = [general[rng.randrange(len(general))] for _ in range(wanted)]
    mixed = task + extra
    rng.shuffle(mixed)
    return mixed


def split(examples: list[dict], validation: float, test: float, seed: int = 0) -> dict[str, list[dict]]:
    if validation < 0 or test < 0 or validation + test >= 1:
        raise UsageError(
            f"data.validation_fraction={validation} and data.test_fraction={test}: each >= 0 and together below 1"
        )
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_test, n_val = round(len(shuffled) * test), round(len(shuffled) * validation)
    return {
        "test": shuffled[:n_test],
        "validation": shuffled[n_test : n_test + n_val],
        "train": shuffled[n_test + n_val :],
    }
