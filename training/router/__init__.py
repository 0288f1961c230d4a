"""Training data and trainer for the request router (`homelab/router/weights.npz`).

    python -m training.router.generate --out /tmp/train.jsonl   # look at the data
    python -m training.router.train                             # retrain, write the weights
    python -m training.router.train --check                     # shipped weights == retrained?
    python -m training.router.overlap ../shared/router-dev.jsonl  # evaluation prompts in the data?

The data is generated from templates, vocabulary lists and hand-written seeds (one module per
category, plus `intl.py` with one `intl_XX.py` bank per language, and `dialogue.py` for
conversations); the
development set is never read by any of it.
"""
