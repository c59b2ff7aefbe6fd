"""Metadata from sidecars and S3 user metadata: keys, values, and bad sidecars in one ingest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_runtime.errors import UsageError
from genai_runtime.rag.documents import RESERVED_KEYS, coerce_metadata, load_file, sidecar_metadata

ORIGIN = "s3://docs/a.md"


def test_s3_keys_with_hyphens_become_underscores_and_the_rest_are_refused_by_name():
    # S3 hands x-amz-meta-doc-type over as "doc-type" (lowercased): it used to dead-letter the document.
    assert coerce_metadata({"doc-type": "guide", "year": "2022"}, ORIGIN) == {"doc_type": "guide", "year": 2022}
    assert coerce_metadata({"-": "x", "a-b-c": "y"}, ORIGIN) == {"_": "x", "a_b_c": "y"}
    for key, reason in [
        ("2nd-edition", "invalid"),
        ("doc type", "invalid"),
        ("a.b", "invalid"),
        ("", "invalid"),
        ("x" * 129, "invalid"),
        ("source", "reserved"),
        ("content-hash", "reserved"),
    ]:
        with pytest.raises(UsageError, match=f"{ORIGIN}: metadata key .* is {reason}"):
            coerce_metadata({key: "v"}, ORIGIN)
    with pytest.raises(UsageError, match="'doc-type' and 'doc_type' are both 'doc_type'"):
        coerce_metadata({"doc-type": "a", "doc_type": "b"}, ORIGIN)
    with pytest.raises(UsageError, match="keys are strings"):
        coerce_metadata({7: "v"}, ORIGIN)  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2022", 2022),
        ("-12", -12),
        ("0", 0),
        ("999999999999999999", 999999999999999999),  # 18 digits: fits a long
        ("-", "-"),  # lstrip("-").isdigit() was False here, but int("--5") crashed and "-" was fine by luck
        ("--5", "--5"),
        ("-0", "-0"),
        ("007", "007"),  # leading zeros are an identifier (a zip code), not a number
        (" 5", " 5"),
        ("5 ", "5 "),
        ("+5", "+5"),
        ("1_000", "1_000"),
        ("\u0663", "\u0663"),  # an Arabic-Indic digit: isdigit() and int() accept it; we keep the string
        ("1234567890123456789", "1234567890123456789"),  # 19 digits may overflow a long: kept as a string
        ("2.5", "2.5"),
        (2.5, 2.5),
        (True, True),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_only_canonical_short_integers_become_ints(value, stored):
    result = coerce_metadata({"v": value}, ORIGIN)["v"]
    assert result == stored and type(result) is type(stored)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "use a string, number or boolean"),
        ([1], "use a string, number or boolean"),
        ({"value": 1}, "use a string, number or boolean"),
        (float("nan"), "numbers must be finite"),
        (float("inf"), "numbers must be finite"),
        (2**63, "integers must fit 64 bits"),
        pytest.param(10**5000, "integers must fit 64 bits", id="too-long-to-print"),  # the message still comes
    ],
)
def test_bad_values_are_refused_with_the_key(value, message):
    with pytest.raises(UsageError, match=f"{ORIGIN}: metadata v=.* is invalid: {message}"):
        coerce_metadata({"v": value}, ORIGIN)


_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_keys = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    st.sampled_from(sorted(RESERVED_KEYS) + ["doc-type", "doc_type", "-", "_"]),
    st.integers(),
    st.none(),
)
_values = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"[-+ ]{0,2}[0-9]{0,22}[ .]?", fullmatch=True),
    st.sampled_from(["-", "--5", "-0", "007", "0", "\u0663", "9" * 18, "9" * 19]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_coerce_metadata_raises_only_usage_errors_and_makes_ints_only_of_integer_strings(raw):
    try:
        coerced = coerce_metadata(raw, ORIGIN)
    except UsageError:
        return  # anything else (ValueError of int(), TypeError, ...) fails the test
    assert len(coerced) == len(raw)
    for key, value in raw.items():
        name = key.replace("-", "_")
        assert name.isidentifier() and name not in RESERVED_KEYS
        result = coerced[name]
        if isinstance(value, str):
            if isinstance(result, int):
                assert _INTEGER_TEXT.fullmatch(value) and len(value.lstrip("-")) <= 18
                assert str(result) == value  # nothing lost: the int prints back as the string
            else:
                assert result == value
        else:
            assert result == value and type(result) is type(value)
    json.dumps(coerced, allow_nan=False)  # storable as the index stores it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "expected .*metadataAttributes.*: Expecting"),
        ("[1, 2]", "not a JSON list"),
        ('{"metadataAtributes": {"year": 2022}}', "unknown key\\(s\\) 'metadataAtributes'"),
        ('{"metadataAttributes": [1]}', "metadataAttributes must be an object"),
        ('{"metadataAttributes": {"doc type": "x"}}', "metadata key 'doc type' is invalid"),
        ('{"metadataAttributes": {"n": ' + "9" * 5000 + "}}", "expected .*metadataAttributes"),
    ],
)
def test_a_bad_sidecar_is_a_usage_error_naming_it(tmp_path, text, message):
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "a.md.metadata.json").write_text(text)
    with pytest.raises(UsageError, match=message) as raised:
        sidecar_metadata(tmp_path / "a.md")
    assert str(tmp_path / "a.md.metadata.json") in str(raised.value)


def test_a_sidecar_that_is_not_utf8_is_a_usage_error(tmp_path):
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "a.md.metadata.json").write_bytes(b'{"metadataAttributes": {"t": "caf\xe9"}}')
    with pytest.raises(UsageError, match="a.md.metadata.json: expected"):
        load_file(tmp_path / "a.md")


def test_sidecar_keys_are_normalised_like_s3_keys(tmp_path):
    (tmp_path / "a.md").write_text("Some text.")
    (tmp_path / "a.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"doc-type": "faq", "year": 2021}}))
    [document] = load_file(tmp_path / "a.md")
    assert document.metadata == {"doc_type": "faq", "year": 2021, "source": str((tmp_path / "a.md").resolve())}


def test_one_bad_sidecar_fails_its_file_alone_and_keeps_its_chunks(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from genai_runtime.rag.faiss_index import FaissIndex
    from genai_runtime.rag.ingest import ingest_paths

    embeddings = DeterministicFakeEmbedding(size=8)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (docs / name).write_text(f"The text of {name}.")
    (docs / "b.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"year": 2021}}))
    path = tmp_path / "index"
    first = ingest_paths([docs], FaissIndex.open(path, "fake", create=True), embeddings)
    assert (first.added, first.failed) == (3, {})
    b = str((docs / "b.md").resolve())
    held = FaissIndex.open(path, "fake").get_by_ids(list(FaissIndex.open(path, "fake").chunk_hashes(b)))
    assert [d.metadata["year"] for d in held] == [2021]

    # The sidecar goes bad (not JSON), another file's sidecar gets a bad key, a fourth file is added.
    (docs / "b.md").write_text("An edit that must not reach the index while its sidecar is broken.")
    (docs / "b.md.metadata.json").write_text('{"metadataAttributes": {"year": 2021')
    (docs / "c.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"2nd": "x"}}))
    (docs / "d.md").write_text("A new document.")
    report = ingest_paths([docs], FaissIndex.open(path, "fake"), embeddings)
    assert set(report.failed) == {b, str((docs / "c.md").resolve())}
    assert "b.md.metadata.json: expected" in report.failed[b]
    assert "metadata key '2nd' is invalid" in report.failed[str((docs / "c.md").resolve())]
    assert (report.added, report.updated, report.deleted) == (1, 0, 0)
    index = FaissIndex.open(path, "fake")
    assert index.sources() == {str((docs / n).resolve()) for n in ("a.md", "b.md", "c.md", "d.md")}
    assert index.get_by_ids(list(index.chunk_hashes(b))) == held  # untouched: not deleted, not updated

    # Fixed, the file is ingested again.
    (docs / "b.md.metadata.json").write_text(json.dumps({"metadataAttributes": {"year": 2022}}))
    fixed = ingest_paths([docs], FaissIndex.open(path, "fake"), embeddings)
    assert set(fixed.failed) == {str((docs / "c.md").resolve())} and fixed.updated == 1
    [chunk] = FaissIndex.open(path, "fake").get_by_ids(list(index.chunk_hashes(b)))
    assert chunk.metadata["year"] == 2022 and chunk.page_content.startswith("An edit")


def test_the_cli_reports_a_bad_sidecar_and_exits_1(tmp_path, capsys, monkeypatch):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from genai_runtime.rag import embeddings as embeddings_module

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("A good document.")
    (docs / "bad.md").write_text("A document with a broken sidecar.")
    (docs / "bad.md.metadata.json").write_text("not json")
    monkeypatch.setattr(embeddings_module, "embeddings_from_spec", lambda spec: DeterministicFakeEmbedding(size=8))
    from genai_runtime.cli import main

    code = main(["rag", "ingest", str(docs), "--index", str(tmp_path / "index"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 documents: 1 added" in out and "; 1 failed" in out
    assert f"failed: {Path(docs / 'bad.md.metadata.json').resolve()}: expected" in out
