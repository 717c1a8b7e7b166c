"""The model class of the example, kept apart from train.py so the pickled model can import it.

MLflow ships this file with the model (``code_paths``) and puts it on the path when loading.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TabularMLP(nn.Module):
    """Standardize, two hidden layers, softmax; outputs [class index, probabilities...]."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        width = len(mean)
        self.net = nn.Sequential(
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(self.logits(x), dim=1)
        label = torch.argmax(probabilities, dim=1, keepdim=True).to(probabilities.dtype)
        return torch.cat([label, probabilities], dim=1)
