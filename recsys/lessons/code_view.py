"""The code that ran: for each model, its objective in one line of maths and the functions that
compute its loss and its update, read from the very modules that trained it.

Nothing here is a copy: :func:`training_code` asks :mod:`inspect` for the source of the
functions named in :data:`TRAINING_CODE`, so a change to a model's update shows up in the app
at once, and ``tests/test_code_view.py`` fails if a named function is renamed or removed.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import recsys

_REPO = Path(recsys.__file__).resolve().parent.parent


@dataclass(frozen=True)
class CodePart:
    """One function of a model's training, as it is in the source tree."""

    label: str  # what it does, in a few words
    path: str  # file, relative to the repository ("recsys/models/mf.py")
    first_line: int
    source: str

    @property
    def where(self) -> str:
        end = self.first_line + self.source.count("\n") - 1
        return f"{self.path}, lines {self.first_line}–{end}"


@dataclass(frozen=True)
class CodeView:
    """A model's training: the objective as maths (LaTeX, one line), then its code."""

    model: str
    maths: str
    parts: tuple[CodePart, ...]


@dataclass(frozen=True)
class _Entry:
    maths: str
    parts: tuple[tuple[str, str], ...]  # (label, "module:Qualified.name")


_SAMPLED_STEP = ("the update: gradients by hand, then Adam",
                 "recsys.models.mf:_SampledMF.train_step")
_AUTOGRAD_STEP = ("the update: autograd, then Adam",
                  "recsys.models.embedding:EmbeddingRecommender.train_step")
TRAINING_CODE: dict[str, _Entry] = {
    "mf-bpr": _Entry(
        r"\min_{P,Q,b}\; \sum_{(u,i,j)} -\log \sigma\big(s_{ui} - s_{uj}\big)"
        r" + \lambda \lVert\theta\rVert^2,\qquad s_{ui} = p_u^\top q_i + b_i",
        (("the loss and its gradient per score", "recsys.models.mf:MFBPR.score_gradient"),
         _SAMPLED_STEP)),
    "mf-bce": _Entry(
        r"\min\; \sum_{(u,i)} -\log \sigma(s_{ui}) - \sum_{(u,j)} \log \sigma(-s_{uj})"
        r" + \lambda \lVert\theta\rVert^2,\qquad s_{ui} = p_u^\top q_i + b_i + b_u",
        (("the loss and its gradient per score", "recsys.models.mf:MFBCE.score_gradient"),
         _SAMPLED_STEP)),
    "mf-mse": _Entry(
        r"\min\; \sum_{(u,i)\,\text{rated}} \big(r_{ui} - \mu - b_u - b_i - p_u^\top q_i\big)^2"
        r" + \lambda \lVert\theta\rVert^2",
        (("the loss", "recsys.models.mf:MFMSE.batch_loss"), _AUTOGRAD_STEP)),
    "mf-als": _Entry(
        r"x_u = \big(Y^\top C_u Y + \lambda I\big)^{-1} Y^\top C_u\, \mathbb{1},\quad"
        r" C_u = I + \alpha\,\mathrm{diag}\big(\text{liked}_u \odot 2^{-\text{later}_u / h}\big)"
        r"\ \ (h = 0\text{: } 2^{\ldots} = 1)",
        (("one half-sweep: every user's (or item's) system whitened, then solved by "
          "conjugate gradient", "recsys.models.als:half_step_and_objective"),
         ("each row's conjugate gradient, compiled by numba (tested against the torch "
          "version, `_cg_batched`: all rows at once)", "recsys.models.compiled_cg:cg_rows"),
         ("a sweep: users, then items", "recsys.models.als:ALSSweeps.train_epoch"))),
    "ncf": _Entry(
        r"\min\; \sum -\log \sigma\big(h^\top [\,p_u \odot q_i\,;\,"
        r" \mathrm{MLP}(p'_u, q'_i)\,]\big)"
        r" - \sum \log \sigma(-\ldots_{uj}) + \lambda \lVert\theta\rVert^2",
        (("the score: GMF and MLP fused into one logit", "recsys.models.modules:NeuralCF.forward"),
         ("the loss", "recsys.models.embedding:EmbeddingRecommender.batch_loss"),
         _AUTOGRAD_STEP)),
    "popularity": _Entry(
        r"s_{ui} = \#\{v : v \text{ liked } i\}\quad\text{(the same list for everyone)}",
        (("the fit: count the likes", "recsys.models.baselines:Popularity._fit"),)),
    "itemknn": _Entry(
        r"s_{ui} = \sum_{j \in \text{liked}_u} \cos(i, j)\quad\text{(top-}k\text{ neighbours)}",
        (("the fit: item-item cosine", "recsys.models.baselines:ItemKNN._fit"),)),
    "ease": _Entry(
        r"B = I - P\,\mathrm{diag}(P)^{-1},\quad P = (X^\top X + \lambda I)^{-1},"
        r"\quad s_u = x_u B",
        (("the fit: one matrix inverse", "recsys.models.baselines:EASE._fit"),)),
    "svd": _Entry(
        r"X \approx U_d \Sigma_d V_d^\top,\quad p_u = U_d \Sigma_d^{1/2},\;"
        r" q_i = V_d \Sigma_d^{1/2}",
        (("the fit: a truncated SVD", "recsys.models.baselines:SVD._fit"),)),
}


# The compiled engine of mf-bpr / mf-bce (config ``engine="compiled"``): the same objective,
# one plain SGD step per sample in a numba kernel instead of Adam on batches.
_COMPILED_EPOCH = ("an epoch: shuffles, negatives, then the kernel",
                   "recsys.models.compiled_sgd:CompiledTraining.train_epoch")
COMPILED_CODE: dict[str, tuple[tuple[str, str], ...]] = {
    "mf-bpr": (("the update: one SGD step per (user, liked, negative), compiled by numba",
                "recsys.models.compiled_sgd:bpr_sgd_epoch"), _COMPILED_EPOCH),
    "mf-bce": (("the update: one SGD step per (user, movie, label), compiled by numba",
                "recsys.models.compiled_sgd:bce_sgd_epoch"), _COMPILED_EPOCH),
}


def training_code(model: str, engine: str | None = None) -> CodeView:
    """The objective and training code of ``model`` (a registered model name); for mf-bpr and
    mf-bce, of the ``engine`` that trained it ("compiled" or "torch")."""
    entry = TRAINING_CODE.get(model)
    if entry is None:
        raise KeyError(f"no training code is listed for {model!r}")
    parts = COMPILED_CODE[model] if engine == "compiled" and model in COMPILED_CODE else entry.parts
    return CodeView(model, entry.maths, tuple(_part(label, target) for label, target in parts))


def _part(label: str, target: str) -> CodePart:
    obj = _resolve(target)
    lines, first = inspect.getsourcelines(obj)
    path = Path(inspect.getsourcefile(obj)).resolve()
    try:
        shown = str(path.relative_to(_REPO))
    except ValueError:  # an installed copy outside the repository
        shown = path.name
    return CodePart(label, shown, first, _dedent("".join(lines)))


def _resolve(target: str) -> Any:
    module, _, qualified = target.partition(":")
    obj: Any = importlib.import_module(module)
    for name in qualified.split("."):
        obj = getattr(obj, name)
    return inspect.unwrap(getattr(obj, "py_func", obj))  # a numba kernel: its Python source


def _dedent(source: str) -> str:
    """A method's source without its class's indentation."""
    lines = source.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines) + "\n"
