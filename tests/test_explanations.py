"""Grounded explanations without an LLM: evidence selection, the faithfulness check, the fallback."""
import numpy as np
import pytest

from rec_udf import explanations as ex
from rec_udf.explainer import Explainer, checked, template_explanation

CATALOGUE = [
    {"item_id": 1, "title": "Heat", "release_year": 1995, "genres": ["Action", "Crime", "Thriller"]},
    {"item_id": 2, "title": "GoodFellas", "release_year": 1990, "genres": ["Crime", "Drama"]},
    {"item_id": 3, "title": "Fargo", "release_year": 1996, "genres": ["Crime", "Drama", "Thriller"]},
    {"item_id": 4, "title": "Toy Story", "release_year": 1995, "genres": ["Animation", "Children's", "Comedy"]},
    {"item_id": 5, "title": "Godfather, The", "release_year": 1972, "genres": ["Action", "Crime", "Drama"]},
    {"item_id": 6, "title": "Sleepless in Seattle", "release_year": 1993, "genres": ["Comedy", "Romance"]},
    {"item_id": 7, "title": "Mr. Holland's Opus", "release_year": 1995, "genres": ["Drama"]},
]
INDEX = ex.CatalogueIndex.of(CATALOGUE)


def evidence(history=(2, 3), ratings=(5.0, 4.0), item=1, all_history=(2, 3, 7)):
    by_id = {c["item_id"]: c for c in CATALOGUE}
    return ex.build_evidence(by_id[item], [by_id[h] for h in history], list(ratings), [by_id[h] for h in all_history])


def test_a_faithful_sentence_passes():
    e = evidence()
    assert ex.check('You will enjoy "Heat" because, like "GoodFellas", it is a gripping crime story.', e, INDEX) is None
    # unquoted titles, the "X, The" form written naturally, a history title beyond the evidence
    assert ex.check("Fans of GoodFellas and Mr. Holland's Opus will like Heat, a tense crime thriller.", e, INDEX) is None
    assert ex.check('You rated "GoodFellas" 5/5 and "Fargo" 4 out of 5, so try "Heat", an action film.', e, INDEX) is None
    # the words of an allowed title are not read as filler or plot ("Mr. Holland's Opus" is not, but a
    # title holding "about" or "review" would be taken out before the check)
    assert ex.check('You will enjoy "Heat" because, like "GoodFellas", it is a must-watch for crime fans.', e,
                    INDEX) is None
    # a genre said of both films passes when they share it (Heat and Fargo: crime, thriller)
    assert ex.check('You will enjoy "Heat", an action and crime film, because, like "Fargo", it is a tense '
                    'crime thriller.', e, INDEX) is None
    # a word of the opening may come back in the reason; glue words may repeat; a genre, a rating word or a
    # title said again further on is not a loop; "based on your ..." is no claim of a source novel
    for reason in ("is a crime story that is tense and that keeps you guessing",
                   "is a crime thriller, a must for anyone who loves crime thrillers",
                   "is picked because you rated Fargo 4/5 and rated GoodFellas 5/5",
                   "is picked based on your taste for tense crime films"):
        assert ex.check(f'You will enjoy "Heat", a crime film, because, like "Fargo", it {reason}.', e, INDEX) is None, reason


@pytest.mark.parametrize("text, reason", [
    ('You will enjoy "Heat" because, like "Casablanca", it is a crime story.', "unknown_title"),
    ("You will enjoy Heat because, like GoodFellas and Sleepless in Seattle, it is a crime story.", "unknown_title"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is a romantic comedy.', "unsupported_genre"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is a horror film.', "unsupported_genre"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is a sci-fi epic.', "unsupported_genre: Sci-Fi"),
    ('You will enjoy "Heat" because you rated "GoodFellas" 2/5.', "unsupported_rating"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is rated 5/5.', "unsupported_rating"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is a crime drama.', "unsupported_genre: Drama"),
    # Action is Heat's own genre but not GoodFellas': said of both, it is false of one
    ('You will enjoy "Heat", an action and crime film, because, like "GoodFellas", it is an action film.',
     "unshared_genre: Action (GoodFellas)"),
    ('You liked "GoodFellas", a crime drama.', "no_item"),
    ('You will enjoy "Heat", a tense crime thriller.', "no_history"),
    ('"Heat" "GoodFellas" is a crime crime crime crime crime crime crime crime crime crime movie.', "repetition"),
    ("Heat and GoodFellas " + "are crime films with great actors and " * 10, "too_long"),
    ("Heat.", "empty"),
    # filler and invented plots, quoted from the 2026-11-24 audit of the served explanations
    ('You will enjoy "Heat" because, like "GoodFellas", it\'s a great choice for a movie review.', "filler: review"),
    ('You will enjoy "Heat" because, like "GoodFellas", it\'s a great choice for a night in.', "filler: great choice"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is a solid recommendation.', "filler: recommendation"),
    ('You will enjoy "Heat" because, like "GoodFellas", it\'s a movie about a group of people who are sent to a '
     'different world.', "unverifiable_plot: about a"),
    ('You will enjoy "Heat" because, like "GoodFellas", it tells the story of two rivals.', "unverifiable_plot"),
    # what the 2026-12-06 demo passed under version 3, quoted from its rank-1 sentences
    ('You will enjoy "Heat", an action and crime film, because, like "Fargo", it\'s a classic movie that has been '
     'reimagined and reimagined in various ways.', "repetition: reimagined"),
    ('You will enjoy "Heat", an action and crime film, because, like "Fargo", it\'s a classic movie that has been '
     'reimagined in a modern setting.', "unverifiable_claim: reimagined"),
    ('You will enjoy "Heat", an action and crime film, because, like "Fargo", it\'s a classic movie that has '
     'captivated audiences worldwide.', "unverifiable_claim: worldwide"),
    ('You will enjoy "Heat", an action and crime film, because, like "Fargo", it\'s a classic example of a classic '
     'film.', "repetition: classic"),
    ('You will enjoy "Heat" because, like "GoodFellas", it is based on a novel.', "unverifiable_claim: based on a novel"),
    ('You will enjoy "Heat" because, like "GoodFellas", it\'s a Disney movie.', "unverifiable_claim: disney"),
    ('You will enjoy "Heat" because, like "GoodFellas", it\'s a sci-fi film with a sci/fi theme.', "repetition: scifi"),
    # a quoted title at the end does not hide the loop before it
    ('You will enjoy "Heat" because it is both tense and tense, like "GoodFellas".', "repetition: tense"),
])
def test_unfaithful_or_broken_sentences_are_rejected_with_their_reason(text, reason):
    assert (ex.check(text, evidence(), INDEX) or "").startswith(reason)


def test_first_sentence_ignores_full_stops_inside_quoted_titles():
    assert ex.first_sentence('Like "Mr. Holland\'s Opus", it moves. Then more') == 'Like "Mr. Holland\'s Opus", it moves.'
    assert ex.first_sentence("no end in sight") is None
    assert ex.first_sentence("One line\nand another.") is None


def test_evidence_prefers_liked_items_closest_in_the_item_space():
    vectors = np.array([[1, 0], [0.9, 0.1], [0.1, 0.9], [1, 0.05], [-1, 0]], dtype=np.float32)
    history = [1, 2, 3, 4]
    # item 3 is the closest but rated 2/5: the liked ones come first, by similarity
    assert ex.select_evidence(vectors, 0, history, [5.0, 4.0, 2.0, 5.0], k=2) == [0, 1]
    assert ex.select_evidence(vectors, 0, history, None, k=2) == [2, 0]
    assert ex.select_evidence(vectors, 0, [], None) == []
    assert ex.select_evidence(vectors, 0, [1, 1, 2], None, k=3) == [0, 2]     # a repeated item counts once
    assert ex.select_evidence(vectors, 0, history, [5.0, 1.0, 2.0, 3.0], k=3) == [0, 3]   # disliked: never evidence
    with pytest.raises(ValueError, match="2 ratings for 4 history items"):
        ex.select_evidence(vectors, 0, history, [5.0, 4.0])


def test_evidence_prefers_items_sharing_a_genre_with_the_recommended_one_after_liked_ones():
    vectors = np.array([[1, 0], [0.9, 0.1], [0.1, 0.9], [1, 0.05], [-1, 0]], dtype=np.float32)
    history, shares = [1, 2, 3, 4], [False, True, False, True]
    # the closest (position 0) shares no genre: the liked items sharing one come first, by similarity
    assert ex.select_evidence(vectors, 0, history, [5.0, 4.0, 2.0, 5.0], k=3, shares_genre=shares) == [1, 3, 0]
    assert ex.select_evidence(vectors, 0, history, None, k=2, shares_genre=shares) == [1, 3]
    # a liked item still comes before one that only shares a genre
    assert ex.select_evidence(vectors, 0, history, [5.0, 3.0, 2.0, 3.0], k=2, shares_genre=shares) == [0, 1]
    with pytest.raises(ValueError, match="3 genre flags for 4 history items"):
        ex.select_evidence(vectors, 0, history, None, shares_genre=shares[:3])


def test_the_fallback_sentence_is_faithful_by_construction():
    for history, ratings in (((2, 3), (5.0, 4.0)), ((4,), (None,)), ((), ())):
        e = evidence(history, ratings, all_history=history)
        sentence = ex.fallback_sentence(e)
        assert ex.check(sentence, e, INDEX) in (None, "no_history") if not history else ex.check(sentence, e, INDEX) is None
    e = evidence((2, 3), (5.0, 4.0))
    assert ex.fallback_sentence(e) == 'Because you liked "GoodFellas" (5/5) and "Fargo" (4/5), we recommend "Heat", another crime film.'
    # a genre only one cited item shares is said of that item alone (Toy Story shares none with Heat)
    e = evidence((4, 2), (5.0, 4.0), all_history=(4, 2))
    assert ex.fallback_sentence(e) == ('Because you liked "Toy Story" (5/5) and "GoodFellas" (4/5), we recommend '
                                       '"Heat", a crime film like "GoodFellas".') and ex.check(ex.fallback_sentence(e), e, INDEX) is None
    # "liked" only for items rated 4/5+: otherwise the sentence says what is known
    assert ex.fallback_sentence(evidence((4, 3), (None, 3.0))).startswith('Because you watched "Toy Story" and "Fargo" (3/5)')


def test_a_failing_llm_sentence_is_replaced_and_marked():
    e = evidence()
    kept = checked(e, 'You will enjoy "Heat" because, like "GoodFellas", it is a crime story. And more', INDEX)
    assert (kept.source, kept.text, kept.rejected) == ("llm", 'You will enjoy "Heat" because, like "GoodFellas", it is a crime story.', None)
    replaced = checked(e, 'You will enjoy "Heat" because, like "Casablanca", it is a western.', INDEX)
    assert replaced.source == "fallback" and replaced.rejected.startswith("unknown_title")
    assert replaced.text == ex.fallback_sentence(e) and replaced.evidence_item_ids == [2, 3]
    assert checked(e, 'You will enjoy "Heat" because it just goes on and on', INDEX).rejected == "unfinished"
    assert (template_explanation(e).source, template_explanation(e).rejected) == ("fallback", None)


class ScriptedExplainer(Explainer):
    """Explainer.explain's attempts and batching without onnxruntime-genai: each continuation comes
    from `script(evidence number, evidence item cited)`."""

    def __init__(self, script, batch_size):
        self.script, self.batch_size, self.calls = script, batch_size, []

    def prompt(self, evidence, noun="movie", cited=0):
        return (evidence.number, cited)

    def _generate_batch(self, prompts, sample, temperature, seed, stop_at_sentence):
        self.calls.append(list(prompts))
        return [self.script(number, cited) for number, cited in prompts]


def test_retries_cite_the_next_evidence_item_and_share_full_batches_with_first_attempts():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Numbered(ex.Evidence):
        number: int = 0

    base = evidence(history=(2, 3, 7), ratings=(5.0, 4.0, 4.0))
    batch = [Numbered(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, number=n) for n in range(10)]
    # evens fail at first and pass citing the second evidence item; 9 fails every attempt; the rest pass at once
    script = {0: lambda n: " is a horror film." if n % 2 == 0 or n == 9 else " is a gripping crime story.",
              1: lambda n: " is a western." if n == 9 else " is a gripping crime story.",
              2: lambda n: " is a western."}
    explainer = ScriptedExplainer(lambda n, cited: script[cited](n), batch_size=4)
    out = explainer.explain(batch, INDEX)
    # 10 first attempts + 6 second + 1 third = 17 rows: 4 full calls and one of 1, not 3 + 2 + 1
    assert [len(c) for c in explainer.calls] == [4, 4, 4, 4, 1]
    assert sorted(c for call in explainer.calls for n, c in call if n == 9) == [0, 1, 2]
    for n, e in enumerate(out):
        if n == 9:      # every attempt failed: the fallback, with the first attempt's reason
            assert (e.source, e.attempts, e.text) == ("fallback", 3, ex.fallback_sentence(base))
            assert e.rejected.startswith("unsupported_genre")
        elif n % 2 == 0:
            assert (e.source, e.attempts, e.rejected) == ("llm", 2, None)
            assert e.text == 'You will enjoy "Heat", an action and crime film, because, like "Fargo", it is a gripping crime story.'
        else:
            assert (e.source, e.attempts) == ("llm", 1) and 'like "GoodFellas"' in e.text
    assert [e.source for e in explainer.explain(batch, INDEX, attempts=1)].count("llm") == 4   # odd 1..7


def test_the_prompt_states_only_the_evidence():
    e = evidence()
    text = "\n".join(m["content"] for m in ex.explanation_messages(e))
    assert '"Heat" (1995; Action, Crime, Thriller)' in text
    # a history item with the genres it shares with Heat only (GoodFellas' Drama is not Heat's)
    assert '"GoodFellas" (Crime), they rated it 5/5' in text and "Drama" not in text
    assert "Mr. Holland" not in text          # history beyond the evidence is not in the prompt
    assert ex.answer_prefix(e) == 'You will enjoy "Heat", an action and crime film, because, like "GoodFellas", it'
    assert ex.display_title("Godfather, The") == "The Godfather"


def test_the_recommender_cites_first_the_liked_history_item_sharing_a_genre_with_the_recommended_one():
    """Recommender.evidence computes the genre flags from the catalogue (no bundle needed: a stand-in
    with the catalogue, its item lookup and SASRec's item vectors)."""
    from types import SimpleNamespace
    from rec_udf.item_lookup import ItemLookup
    from rec_udf.recommender import Recommender
    # Heat (index 0); Toy Story (index 3) is the closest to it but shares no genre; GoodFellas (index 1) shares Crime
    vectors = np.array([[1, 0], [0.2, 1], [0, 1], [0.95, 0.1], [0, 1], [0.5, 0.5], [0, 1]], dtype=np.float32)
    stand_in = SimpleNamespace(items=ItemLookup(np.array([c["item_id"] for c in CATALOGUE])), id_item_vectors=vectors,
                               bundle=SimpleNamespace(catalogue=CATALOGUE))
    stand_in.catalogue_index = lambda ids: Recommender.catalogue_index(stand_in, ids)
    cited = Recommender.evidence(stand_in, 0, [4, 2, 6], [5.0, 5.0, 5.0])
    assert [e.title for e in cited.items] == ["GoodFellas", "Toy Story", "Sleepless in Seattle"]
    closest = Recommender.evidence(stand_in, 0, [4, 2, 6], [5.0, 5.0, 5.0], prefer_shared_genres=False)
    assert [e.title for e in closest.items] == ["Toy Story", "Sleepless in Seattle", "GoodFellas"]
