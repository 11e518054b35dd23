"""The demo's training code: a logistic regression on the digits feature snapshot, as an `aiforge train` job.

`aiforge train` calls ``fit(ctx)`` in a subprocess held to the planned CPU quota: ``ctx.data`` holds the feature
snapshot the spec names (pinned to a version), ``ctx.params`` the spec's params. The returned model is exported to
ONNX, checked against this model and registered; nothing here knows about ONNX, the registry or the deadline.
"""

from sklearn.linear_model import LogisticRegression


def fit(ctx):
    X, y = ctx.data["features"].numpy("train")
    X_valid, y_valid = ctx.data["features"].numpy("valid")
    model = LogisticRegression(C=ctx.params.get("C", 1.0), max_iter=ctx.params.get("max_iter", 1000))
    model.fit(X, y)
    ctx.progress(1, 1)
    ctx.log_metric("train_accuracy", model.score(X, y))
    ctx.log_metric("valid_accuracy", model.score(X_valid, y_valid))
    return model
