"""Forged subscriber tokens for the tests that must see them refused."""


def forged(token: str) -> str:
    """``token`` with one character of its signature changed where every bit counts: the
    last character of unpadded base64 carries bits that decoding drops, so changing it
    alone may leave the signature intact."""
    return token[:-3] + ("B" if token[-3] == "A" else "A") + token[-2:]
