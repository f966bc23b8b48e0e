"""Utilities with nnabla's module paths (``nnabla.utils.learning_rate_scheduler``)."""
