"""ML-ECS losses against independent numpy calculations and geometric facts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learning.losses import ccl_loss, gram_volume, pooled_kl, volume_contrastive_loss

EPS = 1e-6


def np_volume(rows: np.ndarray) -> float:
    """√det(A Aᵀ) in float64, A's rows the vectors."""
    rows = np.asarray(rows, dtype=np.float64)
    return math.sqrt(max(np.linalg.det(rows @ rows.T), 0.0))


# --- gram_volume -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("n", [5, 8, 16])
def test_volume_matches_numpy_determinant_batched(k: int, n: int) -> None:
    rng = np.random.default_rng(100 * k + n)
    vectors = rng.normal(size=(2, 3, k, n))
    expected = np.array([[np_volume(vectors[i, j]) for j in range(3)] for i in range(2)])
    got64 = gram_volume(torch.from_numpy(vectors))
    assert got64.shape == (2, 3) and got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-4)
    got32 = gram_volume(torch.from_numpy(vectors).float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-3)


def test_two_vectors_give_parallelogram_area() -> None:
    a = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    b = np.array([-2.0, 0.5, 1.5, 1.0, -0.5])
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    theta = math.acos(sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb))
    got = gram_volume(torch.tensor(np.stack([a, b])))
    assert got.item() == pytest.approx(na * nb * math.sin(theta), rel=1e-5)


def test_one_vector_gives_its_norm() -> None:
    v = torch.tensor([[[3.0, 4.0]], [[0.0, -2.0]]], dtype=torch.float64)
    np.testing.assert_allclose(gram_volume(v).numpy(), [5.0, 2.0], rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_collinear_vectors_give_the_epsilon_floor_and_finite_gradients(k: int) -> None:
    rng = np.random.default_rng(k)
    u = rng.normal(size=12)
    u /= np.linalg.norm(u)
    scales = np.array([1.0, -0.5, 2.0, 0.25][:k])
    rows = scales[:, None] * u
    # G + εI has eigenvalues Σ scale² + ε and ε (k − 1 times).
    floor = math.sqrt((np.sum(scales**2) + EPS) * EPS ** (k - 1))
    got = gram_volume(torch.tensor(rows))
    assert got.item() == pytest.approx(floor, rel=1e-3)
    assert got.item() < (1e-3 if k > 2 else 3e-3)
    # Unit vectors: the brief's "< 1e-3" holds for k ≥ 3; k = 2 sits at √(2ε) ≈ 1.4e-3.
    unit = torch.tensor(np.tile(u, (k, 1)), dtype=torch.float32, requires_grad=True)
    vol = gram_volume(unit)
    assert vol.item() < (1e-3 if k > 2 else 1.5e-3)
    vol.backward()
    assert torch.isfinite(unit.grad).all()


def test_cholesky_failure_falls_back_to_determinant() -> None:
    rows = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    _, info = torch.linalg.cholesky_ex(rows @ rows.T)
    assert info.item() != 0  # the exactly singular Gram matrix defeats Cholesky
    good = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    got = gram_volume(torch.stack([rows, good]), eps=0.0)
    np.testing.assert_allclose(got.numpy(), [0.0, 2.0], atol=1e-12)


@pytest.mark.parametrize("c", [0.5, 3.0])
def test_volume_scales_as_c_to_the_k(c: float) -> None:
    rng = np.random.default_rng(7)
    vectors = torch.tensor(rng.normal(size=(4, 3, 9)))
    np.testing.assert_allclose(
        gram_volume(c * vectors).numpy(), c**3 * gram_volume(vectors).numpy(), rtol=1e-4
    )


def test_orthonormal_vectors_have_unit_volume() -> None:
    q, _ = torch.linalg.qr(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))
    assert gram_volume(q.T).item() == pytest.approx(1.0, abs=1e-5)


# --- volume_contrastive_loss -------------------------------------------------------------


def test_aligned_others_give_lower_loss_than_random_others() -> None:
    gen = torch.Generator().manual_seed(1)
    anchor = torch.randn(8, 16, generator=gen)
    random_others = torch.randn(8, 2, 16, generator=gen)
    random_loss = volume_contrastive_loss(anchor, random_others, 0.1)["total"]
    # k = 1: the other modality is an exact copy of the anchor.
    copies = volume_contrastive_loss(anchor, anchor[:, None, :].clone(), 0.1)
    # k = 2: one copy of the anchor plus an unrelated vector; {a_i, a_i, b_i} is flat.
    with_copy = torch.stack((anchor, random_others[:, 1]), dim=1)
    half_copies = volume_contrastive_loss(anchor, with_copy, 0.1)
    for losses in (copies, half_copies):
        assert losses["total"] < random_loss
        assert losses["o2a"] < 0.1 and losses["a2o"] < 0.1


def test_tiny_batch_matches_hand_computation() -> None:
    anchor = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    others = np.array([[[1.0, 1.0, 0.0], [0.0, 1.0, 2.0]], [[2.0, 0.0, -1.0], [1.0, 1.0, 1.0]]])
    temperature = 0.5
    a = anchor / np.linalg.norm(anchor, axis=-1, keepdims=True)
    o = others / np.linalg.norm(others, axis=-1, keepdims=True)
    vol = np.array([[np_volume(np.vstack([a[i], o[j]])) for j in range(2)] for i in range(2)])
    logits = -vol / temperature
    # O2A: sample v's others pick their anchor among the anchors u (column v).
    o2a = np.mean([np.log(np.exp(logits[:, v]).sum()) - logits[v, v] for v in range(2)])
    # A2O: anchor v picks its others among the others u (row v).
    a2o = np.mean([np.log(np.exp(logits[v, :]).sum()) - logits[v, v] for v in range(2)])
    assert not np.isclose(o2a, a2o)  # the example tells the two directions apart
    got = volume_contrastive_loss(torch.tensor(anchor), torch.tensor(others), temperature)
    assert got["o2a"].item() == pytest.approx(o2a, abs=1e-5)
    assert got["a2o"].item() == pytest.approx(a2o, abs=1e-5)
    assert got["total"].item() == pytest.approx(0.5 * (o2a + a2o), abs=1e-5)
    task = torch.tensor(1.25, dtype=torch.float64)
    ccl = ccl_loss(task, torch.tensor(anchor), torch.tensor(others), temperature)
    assert ccl.item() == pytest.approx(1.25 + 0.5 * (o2a + a2o), abs=1e-5)


def test_gradients_reach_anchor_and_others() -> None:
    gen = torch.Generator().manual_seed(2)
    anchor = torch.randn(4, 6, generator=gen, requires_grad=True)
    others = torch.randn(4, 3, 6, generator=gen, requires_grad=True)
    volume_contrastive_loss(anchor, others)["total"].backward()
    for grad in (anchor.grad, others.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_contrastive_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        volume_contrastive_loss(torch.randn(4, 6), torch.randn(3, 2, 6))
    with pytest.raises(ValueError):
        volume_contrastive_loss(torch.randn(4, 6), torch.randn(4, 6))


# --- pooled_kl ---------------------------------------------------------------------------


def np_pooled_kl(student: np.ndarray, teacher: np.ndarray, pool: int, sort: bool) -> float:
    """Loops over the documented recipe: softmax, window mean, then (``sort``: different
    tokenizers) sort, top-m, renormalise; KL(teacher ‖ student) summed, batch mean."""

    def pooled(logits: np.ndarray, keep: int) -> list[list[np.ndarray]]:
        out = []
        for seq in logits:
            probs = np.exp(seq - seq.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            rows = []
            for start in range(0, len(seq), pool):
                row = probs[start : start + pool].mean(0)
                if sort:
                    row = np.sort(row)[::-1][:keep]
                rows.append(row / row.sum())
            out.append(rows)
        return out

    keep = min(student.shape[-1], teacher.shape[-1])
    s_rows, t_rows = pooled(student, keep), pooled(teacher, keep)
    total = 0.0
    for s_seq, t_seq in zip(s_rows, t_rows, strict=True):
        for p_s, p_t in zip(s_seq, t_seq, strict=False):  # zip stops at S = min(S1', S2')
            total += float(np.sum(p_t * np.log(p_t / p_s)))
    return total / len(student)


@pytest.mark.parametrize("shared_vocab", [True, False])
def test_pooled_kl_is_zero_for_identical_logits(shared_vocab: bool) -> None:
    logits = torch.randn(3, 10, 7, generator=torch.Generator().manual_seed(3))
    got = pooled_kl(logits, logits.clone(), shared_vocab=shared_vocab)
    assert got.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("s1", "s2", "v", "pool"), [(9, 13, 7, 4), (5, 5, 6, 1), (7, 3, 5, 2)])
def test_pooled_kl_shared_vocabulary_matches_numpy_token_by_token(
    s1: int, s2: int, v: int, pool: int
) -> None:
    gen = torch.Generator().manual_seed(s1 + v)
    student = 2 * torch.randn(2, s1, v, generator=gen)
    teacher = 2 * torch.randn(2, s2, v, generator=gen)
    got = pooled_kl(student, teacher, pool)  # shared_vocab=True is the default
    assert got.ndim == 0 and got.item() > 0
    expected = np_pooled_kl(student.double().numpy(), teacher.double().numpy(), pool, sort=False)
    assert got.item() == pytest.approx(expected, rel=1e-4)
    # The sorted form is a different number for the same logits.
    sorted_form = np_pooled_kl(student.double().numpy(), teacher.double().numpy(), pool, sort=True)
    assert abs(expected - sorted_form) > 1e-3 * expected


@pytest.mark.parametrize(("s1", "v1", "s2", "v2", "pool"), [(9, 11, 13, 7, 4), (5, 6, 5, 6, 1)])
def test_pooled_kl_different_vocabularies_match_numpy_sorted_form(
    s1: int, v1: int, s2: int, v2: int, pool: int
) -> None:
    gen = torch.Generator().manual_seed(s1 + v1)
    student = 2 * torch.randn(2, s1, v1, generator=gen)
    teacher = 2 * torch.randn(2, s2, v2, generator=gen)
    got = pooled_kl(student, teacher, pool, shared_vocab=False)
    assert got.ndim == 0 and got.item() > 0
    expected = np_pooled_kl(student.double().numpy(), teacher.double().numpy(), pool, sort=True)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_pooled_kl_shared_vocabulary_sees_swapped_tokens() -> None:
    # One position, one pooled window: the pooled distributions are the softmaxes.
    teacher = torch.tensor([[[5.0, 0.0, -1.0]]])
    student = torch.tensor([[[0.0, 5.0, -1.0]]])
    p = np.exp([5.0, 0.0, -1.0]) / np.exp([5.0, 0.0, -1.0]).sum()
    q = np.exp([0.0, 5.0, -1.0]) / np.exp([0.0, 5.0, -1.0]).sum()
    by_hand = float(np.sum(p * np.log(p / q)))  # ≈ 4.93
    assert by_hand > 4.5
    assert pooled_kl(student, teacher).item() == pytest.approx(by_hand, rel=1e-5)
    # The vocabulary-free form cannot tell the two apart (same sorted probabilities).
    assert pooled_kl(student, teacher, shared_vocab=False).item() == pytest.approx(0.0, abs=1e-6)


def test_pooled_kl_shared_vocabulary_depends_on_vocabulary_order() -> None:
    gen = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 6, 5, generator=gen), torch.randn(2, 8, 5, generator=gen)
    order = torch.tensor([3, 0, 4, 1, 2])
    permuted = teacher[..., order]
    plain, swapped = pooled_kl(student, teacher).item(), pooled_kl(student, permuted).item()
    assert swapped == pytest.approx(
        np_pooled_kl(student.double().numpy(), permuted.double().numpy(), 4, sort=False), rel=1e-4
    )
    assert abs(swapped - plain) > 1e-2
    # Permuting both sides alike relabels tokens and changes nothing.
    both = pooled_kl(student[..., order], permuted).item()
    assert both == pytest.approx(plain, rel=1e-5)


def test_pooled_kl_sorted_form_ignores_vocabulary_order_for_different_tokenizers() -> None:
    gen = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 6, 9, generator=gen), torch.randn(2, 8, 5, generator=gen)
    permuted = teacher[..., torch.randperm(5, generator=gen)]
    expected = pooled_kl(student, teacher, shared_vocab=False).item()
    assert expected > 0
    got = pooled_kl(student, permuted, shared_vocab=False).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_pooled_kl_shared_vocabulary_rejects_different_vocabulary_sizes() -> None:
    with pytest.raises(ValueError, match="shared_vocab"):
        pooled_kl(torch.randn(2, 4, 9), torch.randn(2, 4, 5))


@pytest.mark.parametrize(("v2", "shared_vocab"), [(9, True), (12, False)])
def test_pooled_kl_trains_only_the_student(v2: int, shared_vocab: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    student = torch.randn(2, 6, 9, generator=gen, requires_grad=True)
    teacher = torch.randn(2, 7, v2, generator=gen, requires_grad=True)
    pooled_kl(student, teacher, pool=2, shared_vocab=shared_vocab).backward()
    assert teacher.grad is None
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_pooled_kl_stays_finite_for_sparse_distributions() -> None:
    student = torch.full((1, 4, 6), -1e4)
    student[..., 0] = 0.0  # one-hot: softmax underflows to exact zeros
    teacher = torch.zeros(1, 4, 6)
    loss = pooled_kl(student, teacher, pool=2)
    assert torch.isfinite(loss) and loss.item() > 0
