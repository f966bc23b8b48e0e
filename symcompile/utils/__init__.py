"""Utilities with nnabla's module paths (``nnabla.utils.learning_rate_scheduler``,
``nnabla.utils.data_iterator``, ``nnabla.utils.data_source``, ``nnabla.utils.rnn``)."""
