"""The domain of mocd: date expressions, working days, anniversaries, expansion, and the CLI."""
