"""The scalar computational-graph layers of chapter 5 (``ch05/layer_naive.py``)."""


class MulLayer:
    """Multiplication node: ``forward(x, y) = x * y``.

    Attributes
    ----------
    x, y : object
        The operands of the last forward (None before).
    """

    def __init__(self):
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout):
        """Return ``(dout * y, dout * x)``: the operands are swapped."""
        dx = dout * self.y
        dy = dout * self.x
        return dx, dy


class AddLayer:
    """Addition node: ``forward(x, y) = x + y``; stateless."""

    def __init__(self):
        pass

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        """Return ``(dout * 1, dout * 1)``."""
        return dout * 1, dout * 1
