"""The evaluation protocol's settings: how interactions become train / validation / test sets.

Kept apart from :mod:`recsys.data.splits` (which does the splitting with numpy) so that the CLI
can offer its flags without importing anything heavy (``bench/CLI_STARTUP.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys.settings import MAX_SEED, check_fields, option


@dataclass(frozen=True)
class SplitConfig:
    """How interactions become train / validation / test sets (the evaluation protocol)."""

    split: str = option(
        "temporal",
        "temporal: each user's latest positives are held out (realistic, default); "
        "random: a seeded shuffle of positive events",
        choices=("temporal", "random"),
        label="Split",
    )
    threshold: float = option(4.0, "ratings >= this count as positives (implicit feedback)",
        label="Positive from rating", bounds=(0.0, 10.0))
    test_fraction: float = option(0.2, "share of each user's positives held out for test",
        label="Test share", bounds=(0.01, 0.9))
    valid_fraction: float = option(
        0.1, "share of the remaining train positives held out for validation (early stopping)",
        label="Validation share", bounds=(0.0, 0.9),
    )
    split_seed: int = option(42, "seed of the random split (and tie-breaks)", label="Split seed",
        bounds=(0, MAX_SEED))

    def __post_init__(self) -> None:
        check_fields(self)

    def describe(self) -> str:
        """One line of protocol, printed next to every metric."""
        held_out = (f"test {self.test_fraction:.0%} / valid {self.valid_fraction:.0%}")
        if self.split == "temporal":
            held_out += " of each user's latest positives"
        else:
            held_out += f" of all positive events, shuffled with seed {self.split_seed}"
        return f"{self.split} split, positives = rating >= {self.threshold:g}, {held_out}"
