"""The data: MovieLens loaded from the first source that works (``loading``), the validated
interactions container with its id <-> index mappings (``interactions``), the train /
validation / test protocol (its settings in ``protocol``, the splitting in ``splits``) and
whole-epoch negative sampling (``sampling``). Nothing here knows a model."""
