"""How good a model is, from its scores alone: ranking metrics over all items with the
training positives excluded (``metrics``), the blocked all-users top-k they rank with
(``topk``), recall by user activity (``segments``), and how well "similar movies" lists agree
with genres and co-likes under each similarity lens (``neighbours``, ``lenses``). Below the
models: a model's training loop validates through ``metrics``."""
