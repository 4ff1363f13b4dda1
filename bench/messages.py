"""Encoding and decoding one model-state message, simnet's codec path against the
``safetensors`` library's.

    python bench/messages.py [--repeat 200] [--width 8]

The payload is the state of ``scenarios/scale_1k.yaml``'s model (MulT over MOSEI-shaped
features, ``--width``, 1 layer, 2 heads: ~200 tensors). Prints milliseconds per message,
the best of 5 rounds of ``--repeat``:

* ``encode`` / ``decode``: :func:`simnet.wire.message.encode` / :func:`~simnet.wire.message.decode`
  (envelope, identity codec, :mod:`simnet.wire.safetensors_bytes`);
* ``safetensors save`` / ``load``: the library's ``safetensors.torch`` functions on the
  same tensors (the save after the contiguous CPU copies it requires), for comparison.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from safetensors.torch import load, save

from learning.models import build_model
from simnet.wire.message import Message, decode, encode

DIMS = {"text": 300, "audio": 74, "vision": 35}


def per_call_ms(fn: Callable[[], object], repeat: int) -> float:
    """Best of 5 rounds of ``repeat`` calls, milliseconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--width", type=int, default=8)
    args = parser.parse_args()
    model = build_model("mult", DIMS, 1, width=args.width, layers=1, heads=2)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    message = Message("end0", "edge0", "model_update", state, {"round": 1})
    data = encode(message)

    def library_save() -> bytes:
        copies = {k: v.contiguous().clone() for k, v in state.items()}
        return save(copies, metadata={"simnet": "{}"})

    rows = [
        ("encode", lambda: encode(message)),
        ("decode", lambda: decode(data)),
        ("safetensors save", library_save),
        ("safetensors load", lambda: load(data)),
    ]
    print(f"{len(state)} tensors, {len(data):,} bytes per message")
    for name, fn in rows:
        print(f"{name:>17}: {per_call_ms(fn, args.repeat):6.2f} ms")


if __name__ == "__main__":
    main()
