"""``ScaNN``, the approximate retrieval index (faiss-backed), also importable from here.

It is defined in :mod:`torchrs.layers.factorized_top_k`, next to ``BruteForce`` which it extends, as in TFRS.
"""

from torchrs.layers.factorized_top_k import ScaNN

__all__ = ["ScaNN"]
