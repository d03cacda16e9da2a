"""The shared textualizer: entity integrity under truncation, unicode, empty history, versioning."""
import datetime as dt
import random

import pytest

from rec_udf import textualizer as tx


def _history(n, start=dt.datetime(1997, 1, 1)):
    titles = ["Toy Story", "Misérables, Les", "Shawshank; Redemption", "C'est arrivé près de chez vous",
              "Star Wars", "Fargo"]
    return [{"item_id": 100 + i, "title": titles[i % len(titles)], "release_year": 1990 + i % 9,
             "genres": ["Drama", "Comedy"][: 1 + i % 2], "rating": 1 + i % 5,
             "event_time": start + dt.timedelta(hours=i)} for i in range(n)]


USER = {"user_id": 7, "age": 57, "gender": "M", "occupation": "administrator", "zip_code": "91344"}


@pytest.mark.parametrize("budget", [25, 40, 60, 120, 400, 10_000])
def test_truncation_keeps_whole_newest_entities(budget):
    history = _history(30)
    prompt = tx.textualize(USER, history, max_tokens=budget)
    kept = list(prompt.history_item_ids)
    # the kept entities are exactly the newest suffix of the history, oldest first
    assert kept == [h["item_id"] for h in history][len(history) - len(kept):]
    by_id = {h["item_id"]: h for h in history}
    for span in prompt.entities:  # every span is one whole, uncut entity
        assert prompt.text[span.start:span.end] == tx.entity_text(by_id[span.item_id])
    starts = [s.start for s in prompt.entities]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(prompt.entities, prompt.entities[1:]))
    if kept:
        assert prompt.n_tokens <= budget
    assert prompt.n_tokens == tx.count_pretokens(prompt.text)
    assert prompt.n_history_total == 30
    # one more entity would not have fitted
    if 0 < len(kept) < len(history):
        bigger = tx.textualize(USER, history, max_tokens=prompt.n_tokens - 1)
        assert len(bigger.history_item_ids) < len(kept)


def test_budget_with_a_non_additive_token_counter():
    """A real tokenizer need not be additive over pieces: the result is verified on the whole text."""
    def chars_over_4(text):  # crude stand-in for a sub-word tokenizer
        return len(text) // 4 + 1
    prompt = tx.textualize(USER, _history(20), max_tokens=120, count_tokens=chars_over_4)
    assert chars_over_4(prompt.text) <= 120
    assert prompt.n_tokens == chars_over_4(prompt.text)
    assert 0 < len(prompt.history_item_ids) < 20


def test_history_is_ordered_chronologically_whatever_the_input_order():
    history = _history(12)
    shuffled = history[:]
    random.Random(3).shuffle(shuffled)
    assert tx.textualize(USER, shuffled, max_tokens=500) == tx.textualize(USER, history, max_tokens=500)


def test_max_items_cap_keeps_the_newest():
    prompt = tx.textualize(USER, _history(10), max_tokens=10_000, max_items=3)
    assert prompt.history_item_ids == (107, 108, 109)
    assert prompt.n_history_total == 10


def test_unicode_is_normalised_and_control_characters_dropped():
    decomposed = "Mise\u0301rables"  # e + combining acute accent
    item = {"item_id": 1, "title": f"Les {decomposed}\x07 \t\n  (Paris)", "release_year": 1995,
            "genres": ["Drama"], "rating": 4.0, "event_time": dt.datetime(1997, 1, 1)}
    prompt = tx.textualize({"user_id": 1, "occupation": "writer\x00"}, [item], max_tokens=100)
    assert '"Les Misérables (Paris)"' in prompt.text
    assert "Mis\u00e9rables" in prompt.text  # composed (NFC)
    assert "\x07" not in prompt.text and "\x00" not in prompt.text
    assert "a writer" in prompt.text
    # CJK and emoji pass through untouched
    item2 = dict(item, item_id=2, title="千と千尋の神隠し 🎬")
    assert "千と千尋の神隠し 🎬" in tx.textualize({"user_id": 1}, [item2], max_tokens=100).text


def test_empty_history_and_missing_profile_fields():
    prompt = tx.textualize({"user_id": 42, "age": float("nan"), "gender": None}, [], max_tokens=50)
    assert prompt.text == "User 42. No movies watched yet."
    assert prompt.entities == () and prompt.history_item_ids == () and prompt.n_history_total == 0


def test_missing_item_fields_render_without_placeholders():
    item = {"item_id": 5, "title": None, "release_year": None, "genres": None, "rating": None,
            "event_time": None}
    prompt = tx.textualize({"user_id": 1}, [item], max_tokens=50)
    assert '"item 5"' in prompt.text and "None" not in prompt.text and "nan" not in prompt.text


def test_template_version_and_hash_are_recorded():
    prompt = tx.textualize(USER, _history(2), max_tokens=100)
    assert prompt.template_name == tx.TEMPLATE_NAME
    assert prompt.template_version == tx.TEMPLATE_VERSION
    assert prompt.template_hash == tx.template_hash(tx.DEFAULT_SPEC)
    books = {"item_noun_plural": "books", "history_verb": "read"}
    other = tx.textualize(USER, _history(2), max_tokens=100, spec=books)
    assert other.template_hash != prompt.template_hash
    assert "Books read, oldest first" in other.text


def test_profile_sentence_variants():
    assert tx.profile_sentence(USER) == ("User 7 is a 57-year-old man, an administrator, "
                                         "from zip code 91344.")
    assert tx.profile_sentence({"user_id": 2, "gender": "F", "occupation": "other"}) == "User 2 is a woman."
    assert "of gender X" in tx.profile_sentence({"user_id": 3, "gender": "X"})


def test_same_second_events_follow_the_tie_order_not_the_item_id():
    import datetime as dt
    when = dt.datetime(1998, 3, 1, 12, 0, 0)
    items = [{"item_id": i, "title": f"Film {i}", "event_time": when} for i in (12, 13, 14, 15)]
    user = {"user_id": 1}
    expected = sorted((12, 13, 14, 15), key=lambda i: tx.tie_order(1, i))
    assert expected != [12, 13, 14, 15]                 # the case where the two orders differ
    for history in (items, items[::-1]):
        assert list(tx.textualize(user, history, max_tokens=200).history_item_ids) == expected
    # another user's same items tie in another order: the rule is per (user, item), not per item
    assert sorted((12, 13, 14, 15), key=lambda i: tx.tie_order(3, i)) != expected
