"""Printing a scheduled Program as source: the printer, the module's entry checks and
literals, the templates' driver and the checks on the generated text."""
