"""Writing a file so that a crash never leaves half of it under its final name."""
import os
import os.path as osp
import tempfile
from typing import List

__all__ = ['atomic_write_bytes', 'remove_stale_partial_files']


def atomic_write_bytes(data: bytes, path: str, chunk_size: int = 1 << 26) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either its old content or all of ``data``.

    The bytes go to a hidden temporary file in the same directory (same file system, so the
    rename is atomic), are flushed to disk, and only then renamed over ``path``; the directory
    entry is synced too. A crash or ``kill -9`` at any point leaves at most the temporary file,
    never a partial file under the final name. The temporary file is created with
    ``O_EXCL`` under an unpredictable name (:func:`tempfile.mkstemp`: a planted file or
    symlink cannot redirect the write) and gets the permissions a plain ``open`` would give;
    temporary files left by writers that died (``kill -9``) are removed on the next write.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale_partial_files(directory)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}{_PARTIAL}{os.getpid()}-',
                               dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, 'wb') as f:
            view = memoryview(data)
            for start in range(0, len(view), chunk_size):
                f.write(view[start:start + chunk_size])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_PARTIAL = '.partial-'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partial_files(directory: str) -> List[str]:
    """Remove the temporary files (``.<name>.partial-<pid>-<random>``) of atomic writes
    whose writer process no longer runs (killed during a save); return their paths. Files of
    live writers, and anything not named like one, are left alone."""
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for name in entries:
        if not name.startswith('.') or _PARTIAL not in name:
            continue
        pid = name.rsplit(_PARTIAL, 1)[1].split('-', 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        path = osp.join(directory, name)
        try:
            os.remove(path)  # a symlink is removed itself, never followed
            removed.append(path)
        except OSError:
            pass
    return removed
