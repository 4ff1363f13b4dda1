"""Byte-level BPE tokenizer trained offline on the task's own texts.

Special tokens sit at fixed ids: ``<pad>`` = 0, ``<eos>`` = 1 (also bos, as in GPT-2),
``<unk>`` = 2; the 256 byte symbols follow, then the merges. No token is added
automatically: the answer text is written ``" {label}<eos>"`` and ``<eos>`` in a text
encodes as the special token.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)
PAD_ID = SPECIAL_TOKENS.index(PAD_TOKEN)
EOS_ID = SPECIAL_TOKENS.index(EOS_TOKEN)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` (sorted first, so the result depends only on the
    multiset of texts) with at most ``vocab_size`` tokens (≥ 259: specials plus 256 bytes).

    Returns a fast tokenizer with pad/eos/bos/unk set, which round-trips through
    ``save_pretrained`` and ``AutoTokenizer.from_pretrained``.
    """
    floor = len(SPECIAL_TOKENS) + 256
    if vocab_size < floor:
        raise ValueError(f"vocab_size must be >= {floor} (specials + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
    )
