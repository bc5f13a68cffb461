"""Train a linear readout of a random ReLU reservoir on secret shares: scikit-learn's digits.

Run ``python docs/examples/digits.py`` (about a minute on a 2-core CPU; add ``--small`` or set
``HECRYPT_EXAMPLE_SMALL=1`` for a few-second configuration, which the test-suite runs).
Needs scikit-learn (``pip install 'hecrypt[datasets]'``).
"""

import os
import sys

import numpy as np
from sklearn.datasets import load_digits

from hecrypt.ml import ReservoirTrainer

small = "--small" in sys.argv[1:] or os.environ.get("HECRYPT_EXAMPLE_SMALL") == "1"

# The data owner's images: pixels in [0, 1], a public random train/test split.
digits = load_digits()
x, y = digits.data / 16.0, digits.target
order = np.random.default_rng(0).permutation(len(y))
if small:
    order = order[:300]
n_test = len(order) // 4
test, train = order[:n_test], order[n_test:]

trainer = ReservoirTrainer(
    128 if small else 1024,      # reservoir units (>= 1024: the products use the chunked ring matmul)
    lr=12.0, mean_gradient=True,  # step = 12 / n_train on the standardised features
    steps=20 if small else 60,
    parties=2,                    # alice (the data owner) and bob
    input_scale=0.5, offset_scale=0.5, standardize=True, bias=0.25,
)
targets = np.eye(10)[y[train]]    # 10 one-vs-all outputs

result = trainer.fit(x[train], targets)             # features, targets and model on shares
scores = trainer.predict(x[test])                   # test scores, opened to alice only
accuracy = np.mean(scores.argmax(axis=1) == y[test])

trainer.fit_plaintext(x[train], targets)            # the float64 twin: same reservoir, same steps
plain_accuracy = np.mean(trainer.predict_plaintext(x[test]).argmax(axis=1) == y[test])

print(f"test accuracy {accuracy:.2%} on shares, {plain_accuracy:.2%} in plaintext")
print(f"{result.steps} steps in {result.seconds:.1f} s, {result.bytes_sent / 1e6:.1f} MB sent "
      f"between {' and '.join(result.parties)}")
