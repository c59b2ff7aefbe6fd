"""The toxicity classifier made locally, and the book's reward-model checks on its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data" / "align" / "toxicity.jsonl"
POLITE = ["Thanks, that was helpful.", "I appreciate your help with the report."]
HOSTILE = ["You are useless and stupid.", "Shut up, nobody cares what you think."]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from genai_runtime.align.toxicity import read_labelled, train_classifier

    return train_classifier(read_labelled(DATA), tmp_path_factory.mktemp("clf") / "classifier", seed=0)


@pytest.fixture(scope="module")
def flipped(classifier, tmp_path_factory) -> Path:
    """The same classifier with its label columns in the other order (toxic first)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(classifier.model_dir)
    head = model.classifier.out_proj
    with torch.no_grad():
        head.weight.copy_(head.weight.flip(0))
        head.bias.copy_(head.bias.flip(0))
    model.config.id2label = {0: "toxic", 1: "not_toxic"}
    model.config.label2id = {"toxic": 0, "not_toxic": 1}
    out = tmp_path_factory.mktemp("flipped") / "classifier"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(classifier.model_dir).save_pretrained(out)
    return out


def test_the_data_set_is_balanced_and_labelled():
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    labels = [r["label"] for r in rows]
    assert len(rows) >= 200 and set(labels) == {"toxic", "not_toxic"}
    assert abs(labels.count("toxic") - labels.count("not_toxic")) <= len(rows) * 0.1


def test_classifier_reaches_high_held_out_accuracy(classifier):
    assert classifier.held_out_examples >= 40
    assert classifier.held_out_accuracy >= 0.85
    config = json.loads((Path(classifier.model_dir) / "config.json").read_text())
    assert config["id2label"] == {"0": "not_toxic", "1": "toxic"}
    assert config["label2id"] == {"not_toxic": 0, "toxic": 1}


def test_polite_text_scores_higher_not_toxic_than_hostile(classifier):
    from genai_runtime.align.toxicity import ClassifierScorer

    for output in ("logit", "probability"):
        scores = ClassifierScorer(classifier.model_dir, label="not_toxic", output=output)(POLITE + HOSTILE)
        assert min(scores[:2]) > max(scores[2:]), output
    probabilities = ClassifierScorer(classifier.model_dir, output="probability")(POLITE + HOSTILE)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


def test_logit_and_probability_orders_agree(classifier):
    """The book's check: polite texts rank above hostile ones whichever output is read. Within a class the
    raw logit of one label need not rank like its probability (that follows the logit *difference*)."""
    import math

    from genai_runtime.align.toxicity import ClassifierScorer

    polite, hostile = POLITE + ["The meeting is at noon."], HOSTILE + ["What a pathetic excuse for an answer."]
    for output in ("logit", "probability"):
        scores = ClassifierScorer(classifier.model_dir, output=output)(polite + hostile)
        assert min(scores[: len(polite)]) > max(scores[len(polite) :]), output
    scorer = ClassifierScorer(classifier.model_dir)
    logits = scorer.logits(polite + hostile)
    difference = (logits[:, 0] - logits[:, 1]).tolist()
    probabilities = scorer.scores(polite + hostile, output="probability")
    assert [math.log(p / (1 - p)) for p in probabilities] == pytest.approx(difference, rel=1e-3, abs=1e-3)


def test_label_by_name_picks_the_right_column_in_either_order(classifier, flipped):
    from genai_runtime.align.toxicity import ClassifierScorer

    texts = POLITE + HOSTILE
    original = ClassifierScorer(classifier.model_dir, label="not_toxic", output="probability")(texts)
    reordered = ClassifierScorer(flipped, label="not_toxic", output="probability")(texts)
    assert reordered == pytest.approx(original, abs=1e-5)
    by_index = ClassifierScorer(flipped, label="toxic", output="probability")
    assert by_index.index == 0 and by_index(texts) == pytest.approx([1 - p for p in original], abs=1e-5)


def test_a_missing_label_names_the_models_labels(classifier):
    from genai_runtime.align.toxicity import ClassifierScorer
    from genai_runtime.errors import UsageError

    with pytest.raises(UsageError, match=r"'nothate'.*\['not_toxic', 'toxic'\]"):
        ClassifierScorer(classifier.model_dir, label="nothate")
    with pytest.raises(UsageError, match="output"):
        ClassifierScorer(classifier.model_dir, output="softmax")


def test_bad_rows_are_refused(tmp_path):
    from genai_runtime.align.toxicity import read_labelled
    from genai_runtime.errors import UsageError

    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "hi", "label": "rude"}\n')
    with pytest.raises(UsageError, match="line 1 has label 'rude'"):
        read_labelled(path)
    path.write_text('{"text": "hi", "label": "toxic"}\n')
    with pytest.raises(UsageError, match="two labels"):
        read_labelled(path)


def test_classifier_reward_follows_trls_signature(classifier):
    from genai_runtime.align.rl import ClassifierReward

    reward = ClassifierReward(classifier.model_dir, label="not_toxic", output="probability")
    values = reward(prompts=["Customer: hi. Agent:"] * 4, completions=POLITE + HOSTILE, completion_ids=[], extra=1)
    assert len(values) == 4 and all(isinstance(v, float) for v in values)
    assert min(values[:2]) > max(values[2:])
    assert reward.last_toxicity == pytest.approx(1 - sum(values) / 4, abs=1e-5)
    assert reward.__name__ == "classifier_not_toxic_probability"
    messages = reward(prompts=[[]], completions=[[{"role": "assistant", "content": POLITE[0]}]])
    assert messages[0] == pytest.approx(values[0], abs=1e-5)


def test_reward_model_and_callable_adapters(classifier, tmp_path):
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from genai_runtime.align.rl import RewardModelReward, RewardSpec, build_reward, load_callable
    from genai_runtime.errors import UsageError

    tokenizer = AutoTokenizer.from_pretrained(classifier.model_dir)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=600,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    RobertaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    scores = RewardModelReward(tmp_path / "rm")(prompts=["a", "b"], completions=POLITE, trainer_state=None)
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)

    assert load_callable("json:dumps") is json.dumps
    with pytest.raises(UsageError, match="cannot import"):
        load_callable("no_such_module_here:f")
    assert build_reward(RewardSpec.parse("python:json:dumps")) is json.dumps

    spec = RewardSpec.parse(f"classifier:{classifier.model_dir},label=toxic,output=logit,weight=-0.5")
    assert (spec.kind, spec.label, spec.output, spec.weight) == ("classifier", "toxic", "logit", -0.5)
    with pytest.raises(UsageError, match="KIND:TARGET"):
        RewardSpec.parse("sentiment:model")
    with pytest.raises(UsageError, match="option"):
        RewardSpec.parse("classifier:dir,colour=red")
