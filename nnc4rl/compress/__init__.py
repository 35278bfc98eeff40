"""Layer 1, the method: gradual magnitude pruning and quantization-aware training of SB3 networks.

Owns: the registry of supported SB3 algorithms and their deployed networks (:mod:`.algos`), the
training plan and its schedule (:mod:`.plan`), pruning masks and the layer-wise
distributions (:mod:`.pruning`), fake quantization (:mod:`.quant`), the SB3 callback that
applies them (:mod:`.callback`), the networks beyond SB3's own (:mod:`.networks`), and what is
measured from saved tensors: sparsity and stored size (:mod:`.measure`, :mod:`.size`).

May import: :mod:`nnc4rl.core`.
"""
