"""Dataset tools shared by the trainer and the CLI: quality rules and code extraction.

Pure Python (plus numpy for MinHash), so ``kubetune data ...`` works without the trainer
extra, and the trainer applies exactly the checks a user ran locally.
"""
