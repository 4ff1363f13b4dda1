"""EF-LSTM and LF-LSTM, the early- and late-fusion baselines of the MulT paper.

* **EF-LSTM** concatenates the modalities' features at each time step and runs one
  LSTM; sequences of different lengths are first resampled to the longest one given by
  nearest index (step t of T reads step ⌊t·T_m/T⌋ of modality m), so leaving out the
  longest modality changes the time grid. Token: its last hidden state.
* **LF-LSTM** runs one LSTM per modality; tokens: each one's last hidden state.

Both decode with Linear → ReLU → dropout → Linear. An absent modality enters EF-LSTM
as zeros and gives LF-LSTM a zero token.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from learning.models.base import Features, FusionModel, Presence


class _LSTMFusion(FusionModel):
    """Shared parts: constructor arguments, tokens of width ``hidden``, and the decoder
    (tokens flattened → ``hidden`` → ReLU → dropout → ``out_dim``)."""

    def __init__(
        self,
        feature_dims: Mapping[str, int],
        out_dim: int = 1,
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.modalities = tuple(feature_dims)
        self.dims = dict(feature_dims)
        self.token_dim = hidden
        tokens = self._build_lstms(hidden)
        self.fc = nn.Linear(tokens * hidden, hidden)
        self.out = nn.Linear(hidden, out_dim)
        self.dropout = dropout

    def _build_lstms(self, hidden: int) -> int:
        """Create the LSTMs; return how many tokens ``encode`` gives."""
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        h = F.dropout(F.relu(self.fc(tokens.flatten(1))), self.dropout, self.training)
        return self.out(h)


def _last_hidden(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """Final hidden state (B, H) of ``lstm`` over ``x`` (B, T, D)."""
    return lstm(x)[1][0][-1]


class EFLSTM(_LSTMFusion):
    """Early fusion: one LSTM over the per-step concatenation of all modalities."""

    def _build_lstms(self, hidden: int) -> int:
        self.lstm = nn.LSTM(sum(self.dims.values()), hidden, batch_first=True)
        return 1

    def encode(
        self, features: Features, present: Presence | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xs, weights = self.inputs(features, present)
        ref = next(iter(xs.values()))
        steps = max(x.shape[1] for x in xs.values())
        cols = []
        for m in self.modalities:
            if m not in xs:
                cols.append(ref.new_zeros(ref.shape[0], steps, self.dims[m]))
                continue
            x = xs[m]
            idx = torch.arange(steps, device=x.device) * x.shape[1] // steps
            cols.append(x[:, idx])
        token = _last_hidden(self.lstm, torch.cat(cols, dim=-1))
        weight = torch.stack(list(weights.values()), dim=1).amax(dim=1, keepdim=True)
        return token[:, None] * weight[..., None], weight


class LFLSTM(_LSTMFusion):
    """Late fusion: one LSTM per modality, last hidden states concatenated."""

    def _build_lstms(self, hidden: int) -> int:
        self.lstms = nn.ModuleDict(
            {m: nn.LSTM(d, hidden, batch_first=True) for m, d in self.dims.items()}
        )
        return len(self.modalities)

    def encode(
        self, features: Features, present: Presence | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xs, weights = self.inputs(features, present)
        tokens = {m: _last_hidden(self.lstms[m], x) for m, x in xs.items()}
        return self.stack_tokens(tokens, weights)
