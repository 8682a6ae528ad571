"""The book's ``ch05/layer_naive.py`` (MulLayer, AddLayer on Python scalars)."""
from fastnn.reference.layer_naive import AddLayer, MulLayer  # noqa: F401
