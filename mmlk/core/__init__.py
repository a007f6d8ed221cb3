"""The leaf of mmlk's layers (docs/architecture.md): argument validation, checkpoint file I/O
(atomic writes, loading without running code, key checks, the converters' core). Plain Python
and PyTorch; nothing here imports an mmlk package above the foundation or mmengine's runner.

Nothing is imported eagerly here, so that importing one module of this package never loads the
others (``mmlk.config_prefix`` runs at interpreter start and reads from here lazily).
"""
