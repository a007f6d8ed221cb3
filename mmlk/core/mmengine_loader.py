"""mmlk's safe loader as mmengine's loader for local files, registered without importing the
loader: :mod:`mmlk.config_prefix` registers it whenever ``mmengine.runner.checkpoint`` is
imported, in any process where mmlk is installed, and that must cost nothing (nor refuse an
unsupported stack, which :mod:`mmlk.compat` does at import) until a checkpoint is read."""

__all__ = ['register_as_mmengine_loader']


def load_from_local(filename: str, map_location=None) -> dict:
    """``CheckpointLoader``'s ``''`` scheme: :func:`.checkpoint_io.load_local_checkpoint`.
    Named as mmengine's own loader, whose log line reads the backend from the name
    ("Loads checkpoint by local backend")."""
    from .checkpoint_io import load_local_checkpoint  # at the first read, see the docstring
    return load_local_checkpoint(filename, map_location)


def register_as_mmengine_loader(checkpoint_module) -> None:
    """Make :func:`load_from_local` the loader of ``CheckpointLoader`` for local paths in
    ``checkpoint_module`` (``mmengine.runner.checkpoint``): every ``load_checkpoint``,
    ``load_from``, ``--resume`` and ``Pretrained`` init after it reads without running code.
    The module is passed in, so that nothing here imports mmengine's runner."""
    checkpoint_module.CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)
