"""The rag lane: a Chroma index from `compoundai_retrievers`, and what a system does with hits.

A small package, one concern a module: `store` (the task's cached index), `prompts` (how hits
appear in a prompt), `systems` (the retrieving systems that call a model: demonstrations and
passages), `baselines` (the two that do not: the kNN vote and the BM25 sentence), `lane` (which
system a task gets). See `lane` for the variants and `systems` for what every answer carries.

A saved system carries its index records (texts, metadata, and the vectors as safetensors) and
rebuilds the index from them when the cache no longer has it: Chroma's own files include a
pickle, which a system directory must not.
"""

from compoundai.contract import ABSTAIN_TEXT
from compoundai.lanes.rag.baselines import BM25SentenceSystem, KnnVoteSystem, best_sentence
from compoundai.lanes.rag.lane import MIN_SCORES, NO_MODEL_MODES, PASSAGE_MODES, SYSTEMS, RagLane
from compoundai.lanes.rag.prompts import CONTEXT_RULES, PASSAGE_CHARS, context_prompt, hit_id
from compoundai.lanes.rag.store import RagStore
from compoundai.lanes.rag.systems import DemosSystem, PassageSystem, RetrievingSystem

__all__ = [
    "ABSTAIN_TEXT",
    "CONTEXT_RULES",
    "MIN_SCORES",
    "NO_MODEL_MODES",
    "PASSAGE_CHARS",
    "PASSAGE_MODES",
    "SYSTEMS",
    "BM25SentenceSystem",
    "DemosSystem",
    "KnnVoteSystem",
    "PassageSystem",
    "RagLane",
    "RagStore",
    "RetrievingSystem",
    "best_sentence",
    "context_prompt",
    "hit_id",
]
