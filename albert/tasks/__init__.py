"""One module per task family: read examples, build features, metrics, decode predictions."""
