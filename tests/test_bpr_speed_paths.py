"""mf-bpr's fast paths against the plain versions they replace (same answers, not timings)."""

import numpy as np
import pytest
import torch

from recsys.data.sampling import MAX_RESAMPLE_ROUNDS, PositiveSet, popularity_cdf, sample_negatives
from recsys.models import create_model
from recsys.models.config import TrainConfig
from recsys.models.embedding import adam_step


def _plain_sample_negatives(users, n_negatives, n_items, positives, rng, cdf=None):
    """The plain form: every round re-checks every draw of the epoch."""
    def draw(shape):
        if cdf is None:
            return rng.integers(0, n_items, size=shape, dtype=np.int64)
        return np.minimum(np.searchsorted(cdf, rng.random(shape), side="right"),
                          n_items - 1).astype(np.int64)

    negatives = draw((len(users), n_negatives))
    for _ in range(MAX_RESAMPLE_ROUNDS):
        hits = positives.contains(np.asarray(users)[:, None], negatives)
        if not hits.any():
            break
        negatives[hits] = draw((int(hits.sum()),))
    return negatives


@pytest.mark.parametrize("popularity", [False, True])
@pytest.mark.parametrize("dense_limit", [PositiveSet.DENSE_LIMIT, 1])
def test_sampling_only_the_redrawn_equals_rechecking_all(popularity, dense_limit, monkeypatch):
    """Dense users (half the items liked, one liking all but four) force many redraw rounds."""
    monkeypatch.setattr(PositiveSet, "DENSE_LIMIT", dense_limit)
    rng = np.random.default_rng(5)
    n_users, n_items = 30, 12
    liked = rng.random((n_users, n_items)) < 0.5
    liked[0] = True
    liked[0, :4] = False
    users, items = np.nonzero(liked)
    positives = PositiveSet(users, items, n_users, n_items)
    cdf = popularity_cdf(np.bincount(items, minlength=n_items), 1.0) if popularity else None
    fast = sample_negatives(users, 3, n_items, positives, np.random.default_rng(9), cdf)
    plain = _plain_sample_negatives(users, 3, n_items, positives, np.random.default_rng(9), cdf)
    np.testing.assert_array_equal(fast, plain)
    assert not positives.contains(users[:, None], fast).any()


def test_direct_adam_steps_are_bit_identical_to_torch_fused_adam():
    """Some parameters without a gradient (skipped by both), several steps, a changed lr."""
    torch.manual_seed(0)
    shapes = [(7, 4), (5, 4), (5, 1), (7, 1)]
    direct_params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    torch_params = [torch.nn.Parameter(p.detach().clone()) for p in direct_params]
    direct = torch.optim.Adam(direct_params, lr=0.01, fused=True)
    plain = torch.optim.Adam(torch_params, lr=0.01, fused=True)
    for step in range(6):
        for i, (a, b) in enumerate(zip(direct_params, torch_params, strict=True)):
            if i == 3:  # like mf-bpr's user bias: never a gradient
                continue
            grad = torch.randn(a.shape)
            a.grad, b.grad = grad.clone(), grad.clone()
        if step == 3:
            for opt in (direct, plain):
                opt.param_groups[0]["lr"] = 0.003
        adam_step(direct)
        plain.step()
    for a, b in zip(direct_params, torch_params, strict=True):
        assert torch.equal(a, b)
        if b in plain.state:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(direct.state[a][key], plain.state[b][key])
    assert direct_params[3] not in direct.state


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_direct_adam_fit_equals_the_torch_optimizer_fit(name, block_split, monkeypatch):
    config = TrainConfig(model=name, epochs=3, dim=8, lr=0.02, batch_size=64, patience=0,
                         threads=1, refit=False, engine="torch")
    direct = create_model(config).fit(block_split)
    monkeypatch.setattr("recsys.models.mf.adam_step", lambda optimizer: optimizer.step())
    plain = create_model(config).fit(block_split)
    for key, value in plain.module.state_dict().items():
        assert torch.equal(direct.module.state_dict()[key], value), key
