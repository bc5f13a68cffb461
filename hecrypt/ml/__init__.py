"""Machine learning on encrypted data: the reservoir trainer (and federated aggregation).

Imports flow downwards only: ``ml`` uses :mod:`hecrypt.smpc` / :mod:`hecrypt.he`, never the CLI.
"""

from .reservoir import Reservoir, ReservoirTrainer, TrainingSession, TrainResult, relative_loss_error

__all__ = ["Reservoir", "ReservoirTrainer", "TrainingSession", "TrainResult", "relative_loss_error"]
from .aggregation import AggregationError, AggregationResult, SecureAggregator, SiteDropout, UpdateError  # noqa: E402

__all__ += ["SecureAggregator", "AggregationResult", "AggregationError", "SiteDropout", "UpdateError"]
