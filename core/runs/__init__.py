"""Runs: the run folders on disk seen as a history (`history.py`: list, summarise, read a run's curves, the settings
that differ), exported as CSV (`export.py`) and as one self-contained HTML report (`report.py`).

Beside evaluation and latent, above training: it reads what the Trainer writes (`metrics.jsonl`, `config.json`,
`samples/`) and never loads a model. A damaged folder is a row with a reason, never an exception.
"""
