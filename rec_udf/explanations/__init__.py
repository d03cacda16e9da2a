"""Grounded explanations, torch-free: the evidence behind a recommendation, the instruction prompt
built from it, the faithfulness check every generated sentence must pass, and the plain data-built
sentence that replaces one that fails.

Evidence (`evidence.select_evidence`): among the user's history, the items closest to the
recommended item in the ranking model's own item space (cosine of SASRec's item embeddings),
preferring those the user rated 4/5 or more when ratings are known, then those sharing a genre
with the recommended item; with the genres each shares
with the recommended item and the user's rating. The explainer LLM only sees this evidence
(`prompt`), and the check (`faithfulness.check`) accepts a sentence only when every title it names is the
recommended item's or one of the user's history titles, every genre it names is the item's own
(and the cited history item's too when said of both), every "N/5" rating it states is one the user
gave; it claims no plot and nothing of a film's history, makers or reception, is no filler, is
short, mentions the recommended item and does not loop. A sentence that fails is replaced by
`fallback.fallback_sentence` and marked `fallback`, never silently. `titles` holds the spelling
rules all of them share.

The package's names are importable from here (`from rec_udf import explanations as ex`).
"""
from rec_udf.explanations.faithfulness import CHECK_VERSION, MAX_WORDS, CatalogueIndex, check
from rec_udf.explanations.evidence import (DISLIKED_BELOW, EVIDENCE_ITEMS, GOOD_RATING, Evidence, EvidenceItem,
                                           build_evidence, select_evidence)
from rec_udf.explanations.fallback import SOURCE_FALLBACK, SOURCE_LLM, fallback_sentence
from rec_udf.explanations.prompt import (EXPLAINER_PROMPT_VERSION, SYSTEM_PROMPT, answer_prefix, explanation_messages,
                                         first_sentence)
from rec_udf.explanations.titles import display_title, genre_names, normalise, title_forms

__all__ = ["CHECK_VERSION", "MAX_WORDS", "CatalogueIndex", "check", "DISLIKED_BELOW", "EVIDENCE_ITEMS", "GOOD_RATING", "Evidence",
           "EvidenceItem", "build_evidence", "select_evidence", "SOURCE_FALLBACK", "SOURCE_LLM", "fallback_sentence",
           "EXPLAINER_PROMPT_VERSION", "SYSTEM_PROMPT", "answer_prefix", "explanation_messages", "first_sentence",
           "display_title", "genre_names", "normalise", "title_forms"]
