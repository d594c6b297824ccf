"""The study: the variant grid (`grid`), its runner (`runner`: train, export, evaluate, resumable),
the overall score (`score`) and the comparison of evaluated runs (`compare`, `figures`)."""
