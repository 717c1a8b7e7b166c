"""Train a small PyTorch MLP on a tabular classification split and log it to MLflow.

The loopml contract of ``run_mlflow_project`` (docs/walkthrough.md): the training split and the
holdout arrive as CSV files (``--train-path``, ``--holdout-path``) with the feature columns and
the ``--target`` column. The logged model takes the feature columns and returns, per row, the
index of the predicted class in the sorted class list (column 0) followed by one probability per
class (columns 1..k). For the fraud data the classes are 0 and 1, so column 0 is the label.

Standardization lives inside the model (buffers computed on the training split), so the served
model takes raw rows; class weights in the loss counter the rare fraud class. The model is
pickled with its class in ``tabular_mlp.py``, shipped as the model's code
(``pt2`` would need a tensor signature, and loopml serves named columns).
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import infer_signature
from tabular_mlp import TabularMLP
from torch import nn


def read(path: str, target: str) -> tuple[pd.DataFrame, Any]:
    frame = pd.read_csv(path)
    if target not in frame.columns:
        raise SystemExit(f"{path}: no target column {target!r} (columns: {list(frame.columns)})")
    features = frame.drop(columns=[target]).astype("float64")
    return features, frame[target].to_numpy()


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(int(args.seed))
    X, y_raw = read(args.train_path, args.target)
    X_holdout, y_holdout_raw = read(args.holdout_path, args.target)
    classes, y = np.unique(y_raw, return_inverse=True)
    index = {label: i for i, label in enumerate(classes.tolist())}
    y_holdout = np.asarray([index[v] for v in y_holdout_raw.tolist()])

    values = X.to_numpy(np.float32)
    mean, std = values.mean(axis=0), values.std(axis=0)
    std[std < 1e-6] = 1.0
    model = TabularMLP(mean, std, int(args.hidden), len(classes))
    counts = np.bincount(y, minlength=len(classes)).astype(np.float32)
    weights = torch.tensor(len(y) / (len(classes) * np.maximum(counts, 1.0)))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(args.learning_rate))
    inputs, targets = torch.from_numpy(values), torch.from_numpy(y.astype(np.int64))
    batch = int(args.batch_size)

    mlflow.log_params({"classes": ",".join(map(str, classes.tolist())), "rows": len(y)})
    for epoch in range(int(args.epochs)):
        model.train()
        order = torch.randperm(len(targets))
        total = 0.0
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model.logits(inputs[chosen]), targets[chosen])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chosen)
        mlflow.log_metric("train_loss", total / len(targets), step=epoch)
        print(f"epoch {epoch + 1}/{int(args.epochs)} loss {total / len(targets):.4f}", flush=True)

    model.eval()
    with torch.no_grad():
        output = model(torch.from_numpy(X_holdout.to_numpy(np.float32))).numpy()
    predicted = output[:, 0].astype(int)
    mlflow.log_metric("holdout_accuracy", float(np.mean(predicted == y_holdout)))
    if len(classes) == 2:
        tp = int(np.sum((predicted == 1) & (y_holdout == 1)))
        found, actual = int(np.sum(predicted == 1)), int(np.sum(y_holdout == 1))
        f1 = 2 * tp / (found + actual) if found + actual else 0.0
        mlflow.log_metric("holdout_f1", f1)
        print(f"holdout F1 {f1:.4f}", flush=True)

    example = X.head(5)
    with torch.no_grad():
        sample = model(torch.from_numpy(example.to_numpy(np.float32, copy=True))).numpy()
    signature = infer_signature(example, sample)
    mlflow.pytorch.log_model(
        model,
        name=args.model_name,
        signature=signature,
        input_example=example,
        serialization_format="pickle",
        code_paths=[str(Path(__file__).with_name("tabular_mlp.py"))],
        # MLflow would write torch==2.13.0+cpu, which no index but PyTorch's own serves
        pip_requirements=[
            f"torch=={version('torch').split('+')[0]}",
            f"mlflow=={version('mlflow')}",
            f"numpy=={version('numpy')}",
            f"pandas=={version('pandas')}",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-path", required=True)
    parser.add_argument("--holdout-path", required=True)
    parser.add_argument("--target", default="Class")
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--hidden", type=float, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--batch-size", type=float, default=256)
    parser.add_argument("--seed", type=float, default=0)
    parser.add_argument("--model-name", default="model")
    args = parser.parse_args()
    for path in (args.train_path, args.holdout_path):
        if not Path(path).is_file():
            raise SystemExit(f"no such file: {path}")
    with mlflow.start_run():
        train(args)


if __name__ == "__main__":
    main()
