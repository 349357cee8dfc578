"""The teaching analyses the app draws: 2-D maps of the embedding space (``projection``), one
score taken apart (``anatomy``), which movies negative sampling draws (``negative_mix``),
vector length against popularity (``vector_norms``) and the leaderboard of comparable runs
(``leaderboard``). Each reads saved runs; none trains."""
