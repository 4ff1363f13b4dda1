"""ML-ECS losses: Gram volume (eqs. 5–6), volume contrastive loss (eqs. 7–8), the CCL
objective (eq. 11) and pooling-based knowledge transfer between language models (eq. 14).

* :func:`gram_volume` — V = √det(A Aᵀ) for k row vectors A ∈ ℝ^{k×n}.
* :func:`volume_contrastive_loss` — GRAM-style in-batch contrastive loss on volumes.
* :func:`ccl_loss` — task loss + ½(A2O + O2A).
* :func:`pooled_kl` — Σ_i KL(teacher_i ‖ student_i) over sequence-pooled token distributions,
  token by token for a shared vocabulary (sorted, vocabulary-free for different tokenizers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gram_volume(vectors: Tensor, eps: float = 1e-6) -> Tensor:
    """Volume √det(A Aᵀ) spanned by the k rows of A, batched: (..., k, n) → (...).

    Computed as the product of the diagonal of the Cholesky factor of G + εI (G = A Aᵀ),
    i.e. √det(G + εI), so the volume and its gradient stay finite (≈ 0, not NaN) for
    collinear vectors; ε biases the volume by about ε·tr(G⁻¹)/2 relative, and collinear
    vectors get the floor √((Σ|aᵢ|² + ε)·ε^(k−1)). Where Cholesky still fails (ε too small
    for the dtype), the volume is √max(det(G + εI), 0), whose gradient is infinite at 0.
    For k = 1 it is the vector's norm. Half-precision inputs are computed in float32; the
    result has the input's dtype.
    """
    if vectors.ndim < 2:
        raise ValueError(f"vectors must be (..., k, n), got shape {tuple(vectors.shape)}")
    a = vectors.to(torch.promote_types(vectors.dtype, torch.float32))
    k = a.shape[-2]
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    gram = a @ a.mT + eps * eye
    chol, info = torch.linalg.cholesky_ex(gram)
    failed = info != 0
    if not bool(failed.any()):
        return chol.diagonal(dim1=-2, dim2=-1).prod(-1).to(vectors.dtype)
    # Factor identities in place of the failed matrices so no garbage enters backward.
    chol = torch.linalg.cholesky(torch.where(failed[..., None, None], eye, gram))
    fallback = torch.linalg.det(gram).clamp_min(0).sqrt()
    volume = torch.where(failed, fallback, chol.diagonal(dim1=-2, dim2=-1).prod(-1))
    return volume.to(vectors.dtype)


def volume_contrastive_loss(
    anchor: Tensor, others: Tensor, temperature: float = 1.0
) -> dict[str, Tensor]:
    """In-batch volume contrastive losses of eqs. 7–8 (GRAM convention).

    anchor (B, n): the anchor modality's representation of each sample; others (B, k, n):
    the k non-anchor modalities' representations. Features are L2-normalised along n, then
    V[i, j] = gram_volume([anchor_i, others_j,1, …, others_j,k]) — rows i index anchors,
    columns j index the others — and logits = −V / temperature (B, B); matched pairs lie
    on the diagonal. Losses are negative log-likelihoods of the diagonal (cross entropy):

    * ``o2a`` (others → anchor): for each sample v, softmax over anchors u of −V[u, v]
      (column-wise), mean over v of −log of entry (v, v);
    * ``a2o`` (anchor → others): for each anchor v, softmax over others u of −V[v, u]
      (row-wise), mean over v of −log of entry (v, v);
    * ``total`` = ½(o2a + a2o).

    The paper's printed denominators do not match these names (eq. 7 varies anchor and
    others together, eq. 8 varies the anchor); the names follow their meaning, and the
    total, the only part eq. 11 uses, does not depend on the choice. Each value is a
    scalar tensor.
    """
    if anchor.ndim != 2 or others.ndim != 3:
        raise ValueError(
            f"anchor must be (B, n) and others (B, k, n), got {tuple(anchor.shape)} "
            f"and {tuple(others.shape)}"
        )
    if others.shape[0] != anchor.shape[0] or others.shape[2] != anchor.shape[1]:
        raise ValueError(
            f"batch or feature sizes differ: anchor {tuple(anchor.shape)}, "
            f"others {tuple(others.shape)}"
        )
    b, k, n = others.shape
    a = F.normalize(anchor, dim=-1)[:, None, None, :].expand(b, b, 1, n)
    o = F.normalize(others, dim=-1)[None].expand(b, b, k, n)
    logits = -gram_volume(torch.cat((a, o), dim=-2)) / temperature
    targets = torch.arange(b, device=logits.device)
    o2a = F.cross_entropy(logits.mT, targets)
    a2o = F.cross_entropy(logits, targets)
    return {"o2a": o2a, "a2o": a2o, "total": 0.5 * (o2a + a2o)}


def ccl_loss(task_loss: Tensor, anchor: Tensor, others: Tensor, temperature: float = 1.0) -> Tensor:
    """Eq. 11: task_loss + ½(A2O + O2A); shapes as in :func:`volume_contrastive_loss`."""
    return task_loss + volume_contrastive_loss(anchor, others, temperature)["total"]


def _pooled_log_probs(logits: Tensor, pool: int) -> Tensor:
    """(B, S, V) logits → (B, ⌈S / pool⌉, V) log-probabilities: the softmax over the
    vocabulary averaged over consecutive windows of ``pool`` positions (the last window
    may be shorter; it is averaged over the positions it has), in float32 log space."""
    b, s, v = logits.shape
    pooled_len = -(-s // pool)
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_p = F.pad(log_p, (0, 0, 0, pooled_len * pool - s), value=float("-inf"))
    starts = torch.arange(pooled_len, device=logits.device) * pool
    counts = (s - starts).clamp(max=pool).to(log_p.dtype)
    return log_p.view(b, pooled_len, pool, v).logsumexp(dim=2) - counts.log()[:, None]


def _sorted_top(log_p: Tensor, keep: int) -> Tensor:
    """Each distribution of ``log_p`` (..., V) sorted in descending order, cut to its
    ``keep`` largest probabilities and renormalised: (..., keep)."""
    top = log_p.topk(keep, dim=-1).values
    return top - top.logsumexp(dim=-1, keepdim=True)


def pooled_kl(
    student_logits: Tensor, teacher_logits: Tensor, pool: int = 4, *, shared_vocab: bool = True
) -> Tensor:
    """Eq. 14: L_kt = Σ_{i=1}^{S} KL(p_teacher,i ‖ p_student,i), mean over the batch (a scalar).

    student_logits (B, S1, V1) is the model being trained; teacher_logits (B, S2, V2) is
    detached, so gradients reach only the student. The paper writes KLD(y_i^slm, y_i^llm)
    and leaves the direction open; here it is the forward KL with the teacher as the
    target, Σ_v p_teacher,i(v)·(log p_teacher,i(v) − log p_student,i(v)); eq. 15 uses it
    with the LLM as student, eq. 16 with the SLM.

    Pooling (eq. 14's "pooled output logits", details ours where the paper is silent):
    each model's token distributions (softmax over its vocabulary) are averaged over
    consecutive windows of ``pool`` positions from the start (ceil mode: the last window
    may be shorter), giving ⌈S1 / pool⌉ and ⌈S2 / pool⌉ pooled positions; the first
    S = min(⌈S1 / pool⌉, ⌈S2 / pool⌉) are compared (the paper's S = min(S1, S2)).

    * ``shared_vocab=True`` (default; the shipped ML-ECS, whose SLM and LLM share one
      tokenizer): the pooled distributions are compared token by token, p(v) against
      q(v) for the same token id v, so V1 must equal V2 (``ValueError`` otherwise).
    * ``shared_vocab=False`` (different tokenizers, where token ids mean different
      things): a vocabulary-free form — each pooled distribution is sorted in descending
      order and its top min(V1, V2) probabilities renormalised, and the sorted vectors
      are compared rank by rank. It ignores which token is which (a permutation of the
      vocabulary does not change it), so use it only when ids cannot be matched.

    Computed in float32 log space, so sparse distributions give no infinities.
    """
    if student_logits.ndim != 3 or teacher_logits.ndim != 3:
        raise ValueError(
            f"logits must be (B, S, V), got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(
            f"batch sizes differ: {student_logits.shape[0]} and {teacher_logits.shape[0]}"
        )
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    v1, v2 = student_logits.shape[-1], teacher_logits.shape[-1]
    if shared_vocab and v1 != v2:
        raise ValueError(
            f"shared_vocab=True needs one vocabulary, got sizes {v1} and {v2}; "
            "pass shared_vocab=False for different tokenizers"
        )
    student = _pooled_log_probs(student_logits, pool)
    teacher = _pooled_log_probs(teacher_logits.detach(), pool)
    if not shared_vocab:
        keep = min(v1, v2)
        student, teacher = _sorted_top(student, keep), _sorted_top(teacher, keep)
    s = min(student.shape[1], teacher.shape[1])
    kl = F.kl_div(student[:, :s], teacher[:, :s], reduction="sum", log_target=True)
    return kl / student_logits.shape[0]
