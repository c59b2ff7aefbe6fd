"""`genai align pairs`: A2I human-loop output, Ground Truth output manifests and JSONL to preference pairs;
the n(n-1)/2 rule, every bad-record class named, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_runtime.align.preferences import (
    RecordError,
    convert_paths,
    from_a2i,
    from_ground_truth_line,
    ranking_to_pairs,
    read_pairs,
    split_by_prompt,
)
from genai_runtime.errors import UsageError

DATA = Path(__file__).resolve().parents[1] / "data" / "align"


def _a2i(ranks_per_worker, responses=("A", "B", "C"), prompt="Q?", name="loop-1") -> dict:
    return {
        "flowDefinitionArn": "arn:aws:sagemaker:us-east-1:111122223333:flow-definition/f",
        "humanLoopName": name,
        "humanAnswers": [
            {"answerContent": {f"rank-{i}": str(r) for i, r in enumerate(ranks)}, "workerId": f"w{n}"}
            for n, ranks in enumerate(ranks_per_worker)
        ],
        "inputContent": {"prompt": prompt, "responses": list(responses)},
    }


def _pairs_as_tuples(pairs):
    return [(p["chosen"], p["rejected"]) for p in pairs]


def test_three_responses_give_three_pairs_preferred_first():
    pairs = ranking_to_pairs("Q?", ["A", "B", "C"], [2, 1, 3])  # B > A > C
    assert sorted(_pairs_as_tuples(pairs)) == sorted([("B", "A"), ("A", "C"), ("B", "C")])
    assert all(p["prompt"] == "Q?" for p in pairs)


def test_four_responses_give_six_pairs():
    pairs = ranking_to_pairs("Q?", ["A", "B", "C", "D"], [4, 3, 2, 1])  # D > C > B > A
    assert len(pairs) == 6
    order = "DCBA"
    assert all(order.index(c) < order.index(r) for c, r in _pairs_as_tuples(pairs))


def test_the_sample_a2i_and_ground_truth_outputs_convert():
    a2i = convert_paths([DATA / "ranking" / "a2i"])
    # rank-0001: one labeler, 3 responses (3 pairs); rank-0002: two labelers, each ranking gives its 3 pairs
    assert (len(a2i.pairs), a2i.rankings, a2i.bad) == (9, 3, [])
    first = [p for p in a2i.pairs if p["prompt"] == "How do I reset my password?"]
    assert first[0]["chosen"].startswith("Thank you for asking!")
    manifest = convert_paths([DATA / "ranking" / "output.manifest"])
    assert (len(manifest.pairs), manifest.rankings, manifest.bad) == (6 + 6, 3, [])
    # Two labelers who disagree on a pair keep both directions (a soft 1:1 label, no mean-rank tie).
    train = [p for p in manifest.pairs if p["prompt"] == "What time does the train leave?"]
    assert ("Seven.", "It leaves at seven in the morning.") in _pairs_as_tuples(train)
    assert ("It leaves at seven in the morning.", "Seven.") in _pairs_as_tuples(train)


def test_plain_jsonl_pairs_read_and_split_by_prompt():
    pairs = read_pairs(DATA / "pairs.jsonl")
    assert len(pairs) == 48
    train, held = split_by_prompt(pairs, 0.25, seed=1)
    assert len(held) == 12 and not {p["prompt"] for p in train} & {p["prompt"] for p in held}
    assert split_by_prompt(pairs, 0.25, seed=1) == (train, held)


@pytest.mark.parametrize(
    ("ranks", "responses", "field", "problem"),
    [
        ([1, 1, 2], ("A", "B", "C"), "humanAnswers[0].answerContent.ranks", "tie: rank 1 given to 2 responses"),
        ([1, 2, 4], ("A", "B", "C"), "humanAnswers[0].answerContent.ranks", "not a permutation of 1..3"),
        ([0, 1, 2], ("A", "B", "C"), "humanAnswers[0].answerContent.ranks", "not a permutation of 1..3"),
        ([1, 2], ("A", "B", "C"), "humanAnswers[0].answerContent.rank-<i>", "no rank for responses [2]"),
        ([1, 2, 3], ("A", "B", "A "), "inputContent.responses[2]", "same text as responses[0] (chosen == rejected)"),
        ([1, 2, 3], ("A", "", "C"), "inputContent.responses[1]", "empty text"),
    ],
)
def test_every_bad_a2i_record_is_named(ranks, responses, field, problem):
    result = from_a2i(_a2i([ranks], responses), "s3/output.json")
    assert result.pairs == []
    (bad,) = result.bad
    assert bad.where == "s3/output.json[human loop loop-1]"
    assert bad.field == field and problem in bad.problem


def test_missing_prompt_responses_and_answers_are_named():
    no_responses = _a2i([[1, 2]])
    del no_responses["inputContent"]["responses"]
    assert str(from_a2i(no_responses, "o.json").bad[0]) == (
        "o.json[human loop loop-1]: inputContent.responses: missing"
    )
    one_response = from_a2i(_a2i([[1]], responses=("A",)), "o.json").bad[0]
    assert "at least 2 (missing responses)" in one_response.problem
    empty_prompt = from_a2i(_a2i([[1, 2, 3]], prompt="  "), "o.json").bad[0]
    assert (empty_prompt.field, empty_prompt.problem) == ("inputContent.prompt", "empty text")
    unfinished = _a2i([])
    assert "no human answers" in from_a2i(unfinished, "o.json").bad[0].problem


def test_one_bad_labeler_leaves_the_others_pairs():
    result = from_a2i(_a2i([[1, 2, 3], [1, 1, 3]]), "o.json")
    assert len(result.pairs) == 3
    assert result.bad[0].where == "o.json[human loop loop-1] worker w1"


def test_ground_truth_bad_lines_are_named_by_file_and_line(tmp_path):
    good = json.loads((DATA / "ranking" / "output.manifest").read_text().splitlines()[1])
    tie = json.loads(json.dumps(good))
    tie["ranking"]["annotationsFromAllWorkers"][0]["annotationData"]["content"] = json.dumps(
        {"rank-0": "1", "rank-1": "1", "rank-2": "3"}
    )
    unlabeled = {k: v for k, v in good.items() if k != "ranking"}
    manifest = tmp_path / "output.manifest"
    manifest.write_text("\n".join(json.dumps(x) for x in (good, tie, unlabeled)) + "\nnot json\n")
    result = convert_paths([manifest])
    assert len(result.pairs) == 6 + 3  # line 2: its second labeler's ranking is fine
    where = [str(b) for b in result.bad]
    assert where[0].startswith(f"{manifest}:2 worker private.us-east-1.a1b2c3d4e5f60718: ")
    assert "ranking.annotationsFromAllWorkers[0].annotationData.content.ranks: tie" in where[0]
    assert where[1].startswith(f"{manifest}:3: ranking: missing")
    assert where[2].startswith(f"{manifest}:4: line: not JSON")


def test_ground_truth_label_attribute_is_found_from_its_metadata():
    record = {
        "prompt": "Q?",
        "responses": ["A", "B"],
        "prefs": {"rank-0": 2, "rank-1": 1},  # a consolidation Lambda that returned the form itself
        "prefs-metadata": {"type": "groundtruth/custom", "job-name": "j"},
    }
    assert _pairs_as_tuples(from_ground_truth_line(record, "m:1").pairs) == [("B", "A")]
    assert "no Ground Truth label metadata" in str(from_ground_truth_line({"prompt": "Q"}, "m:1").bad[0])


def test_plain_pairs_validation(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"prompt": "Q", "chosen": "same", "rejected": "same"}\n{"prompt": "Q", "chosen": "", "rejected": "x"}\n'
    )
    with pytest.raises(UsageError, match=r"pairs.jsonl:1: rejected: same text as chosen.*pairs.jsonl:2: chosen: empty"):
        read_pairs(path)


def test_record_errors_are_usage_errors():
    with pytest.raises(UsageError, match="ranks: tie"):
        ranking_to_pairs("Q", ["A", "B"], [1, 1])
    assert issubclass(RecordError, UsageError)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=7).flatmap(lambda n: st.permutations(list(range(1, n + 1)))))
def test_any_ranking_gives_n_choose_2_pairs_preferred_first(ranks):
    n = len(ranks)
    responses = [f"response {i}" for i in range(n)]
    pairs = ranking_to_pairs("Q", responses, ranks)
    assert len(pairs) == n * (n - 1) // 2
    rank_of = {responses[i]: ranks[i] for i in range(n)}
    assert all(rank_of[p["chosen"]] < rank_of[p["rejected"]] for p in pairs)
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    assert len({(p["chosen"], p["rejected"]) for p in pairs}) == len(pairs)


# ---- CLI -----------------------------------------------------------------------------------------


def test_cli_pairs_converts_and_exits_2_naming_bad_records(tmp_path, capsys):
    from genai_runtime.cli import main

    out = tmp_path / "pairs.jsonl"
    assert main(["align", "pairs", str(DATA / "ranking"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 21
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_a2i([[1, 1, 2]], name="loop-9")))
    capsys.readouterr()
    assert main(["align", "pairs", str(DATA / "ranking"), str(bad), "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "bad.json[human loop loop-9]: humanAnswers[0].answerContent.ranks: tie" in err
    assert not (tmp_path / "x.jsonl").exists()
    assert (
        main(["align", "pairs", str(DATA / "ranking"), str(bad), "--out", str(tmp_path / "x.jsonl"), "--skip-bad"]) == 0
    )
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 21
    assert json.loads(capsys.readouterr().out)["bad_records"] == 1
