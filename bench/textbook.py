"""A faithful *textbook* BPR-MF, the reference the benchmarks compare against.

Written the way tutorials write it on purpose: one positive per ``Dataset.__getitem__`` with
its negatives drawn by Python rejection sampling, a ``DataLoader(batch_size=1024,
shuffle=True)``, autograd, and Adam with (dense, coupled) weight decay. It is SUPPOSED to be
slow; do not optimise it. Hyperparameters are the common tutorial ones: dim 64, 4 negatives
per positive, Adam lr 1e-3, weight decay 1e-5, 20 epochs, no validation, no early stopping.

It speaks just enough of the recommender surface (``fit(split) -> self``, ``score(users)``)
for :func:`recsys.evaluation.metrics.evaluate_model`.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from recsys.models.trainer import torch_threads


class BPRDataset(Dataset):
    """(user, positive item, negative items) triples, negatives drawn per sample."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, negatives: int,
                 seed: int) -> None:
        self.pairs = list(zip(users.tolist(), items.tolist(), strict=True))
        self.n_items = n_items
        self.negatives = negatives
        self.liked: dict[int, set[int]] = {}
        for u, i in self.pairs:
            self.liked.setdefault(u, set()).add(i)
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        user, positive = self.pairs[index]
        negatives = []
        while len(negatives) < self.negatives:
            item = self.rng.randrange(self.n_items)
            if item not in self.liked[user]:
                negatives.append(item)
        return torch.tensor(user), torch.tensor(positive), torch.tensor(negatives)


class BPRMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, users, positives, negatives):
        u = self.user(users)
        pos = (u * self.item(positives)).sum(-1)
        neg = (u.unsqueeze(1) * self.item(negatives)).sum(-1)
        return pos, neg


class TextbookBPR:
    """Trains :class:`BPRMF` on every positive before the test period (train + validation)."""

    name = "textbook-bpr"

    def __init__(self, dim: int = 64, negatives: int = 4, lr: float = 1e-3,
                 weight_decay: float = 1e-5, epochs: int = 20, batch_size: int = 1024,
                 seed: int = 42, threads: int = 2) -> None:
        self.dim, self.negatives, self.lr = dim, negatives, lr
        self.weight_decay, self.epochs, self.batch_size = weight_decay, epochs, batch_size
        self.seed, self.threads = seed, threads
        self.losses: list[float] = []

    def fit(self, split) -> TextbookBPR:
        positives = split.seen_at_test
        self.n_users, self.n_items = positives.n_users, positives.n_items
        with torch.random.fork_rng(devices=[]), torch_threads(self.threads):
            torch.manual_seed(self.seed)
            data = BPRDataset(positives.user_index, positives.item_index, self.n_items,
                              self.negatives, self.seed)
            loader = DataLoader(data, batch_size=self.batch_size, shuffle=True)
            self.module = BPRMF(self.n_users, self.n_items, self.dim)
            optimizer = torch.optim.Adam(self.module.parameters(), lr=self.lr,
                                         weight_decay=self.weight_decay)
            for _ in range(self.epochs):
                total = 0.0
                for users, pos_items, neg_items in loader:
                    pos, neg = self.module(users, pos_items, neg_items)
                    loss = -F.logsigmoid(pos.unsqueeze(1) - neg).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                self.losses.append(total / len(loader))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch_threads(self.threads):
            u = self.module.user(torch.as_tensor(np.asarray(users, np.int64)))
            return (u @ self.module.item.weight.T).numpy()
