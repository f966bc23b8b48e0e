"""nnabla's ``utils.data_source_implements`` path for the data sources it defines."""

from .data_source import CsvDataSource, SimpleDataSource

__all__ = ["SimpleDataSource", "CsvDataSource"]
