"""The on-device recommender: implicit-feedback matrix factorisation in torch.

- :mod:`.dataset`: event CSV files, event weights, interaction matrices.
- :mod:`.model`: the shared item half and the private customer half.
- :mod:`.als`: weighted least-squares training, with an item step that runs
  from summed per-item statistics.
- :mod:`.bpr`: the BPR loss, kept for comparison.
- :mod:`.io`: safetensors files for both halves.
- :mod:`.recommend`: top-K, regenerate, popular products, products to promote.
- :mod:`.evaluation`: the hold-one-out protocol.
- :mod:`.tuning`: grid search on a validation split.
"""
