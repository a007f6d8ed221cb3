"""The package's layers (docs/architecture.md): every import of an mmlk module, at module level
or inside a function, goes to the same or a lower layer, and modules of one layer import each
other without cycles. Read from the source with ``ast``, so an import that only runs on some
code path is checked too."""
import ast
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import pytest

from conftest import LARGE_FILE_BYTES, drop_large_files

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'mmlk')

# Lowest first. A module belongs to the layer of its longest listed prefix; `mmlk` itself is
# mmlk/__init__.py, the facade that installs the config prefix.
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('foundation', ('mmlk.version', 'mmlk.compat', 'mmlk.quiet', 'mmlk.registry', 'mmlk.core')),
    ('ops', ('mmlk.ops', )),
    ('models', ('mmlk.models', )),
    ('sparse-training algorithm', ('mmlk.sparsity', )),
    ('engine', ('mmlk.engine', )),
    ('runner support for the tools', ('mmlk.utils', )),
    ('entry points', ('mmlk.config_prefix', 'mmlk')),
)


def package_modules() -> Dict[str, str]:
    """module name -> file, for every module of the package (not the .mim symlinks)."""
    modules = {}
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                parts = osp.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                modules['.'.join(parts)] = path
    return modules


def layer_of(module: str) -> int:
    best, index = '', None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + '.')) and len(prefix) > len(best):
                best, index = prefix, i
    assert index is not None, f'{module} is in no layer of LAYERS; add it'
    return index


def imports_of(module: str, path: str, modules: Dict[str, str]) -> List[Tuple[str, int, bool]]:
    """(imported mmlk module, line, inside a function) for every import statement. A package
    imported on the way (``mmlk.ops`` for ``mmlk.ops.depthwise``) counts, unless it contains
    the importing module (Python has run it already) or is the root."""
    is_package = path.endswith('__init__.py')
    package = module if is_package else module.rpartition('.')[0]
    found = []

    def add(target: str, line: int, local: bool) -> None:
        parts = target.split('.')
        for end in range(2, len(parts) + 1):  # the packages run on the way, then the module
            name = '.'.join(parts[:end])
            inside = module.startswith(name + '.') and end < len(parts)
            if name in modules and name != module and not inside:
                found.append((name, line, local))

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split('.')[0] == 'mmlk':
                        add(alias.name, child.lineno, inner)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')[:len(package.split('.')) - child.level + 1]
                    target = '.'.join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ''
                if target.split('.')[0] == 'mmlk':
                    for alias in child.names:  # `from pkg import submodule`
                        sub = f'{target}.{alias.name}'
                        add(sub if sub in modules else target, child.lineno, inner)
            visit(child, inner)

    with open(path) as f:
        visit(ast.parse(f.read(), path), False)
    return found


def import_graph() -> Dict[str, List[Tuple[str, int, bool]]]:
    modules = package_modules()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def test_every_module_is_in_a_layer():
    for module in package_modules():
        layer_of(module)


def test_imports_go_down_the_layers_only():
    wrong = []
    for module, imports in import_graph().items():
        for target, line, local in imports:
            if layer_of(target) > layer_of(module):
                wrong.append(f'{module}:{line} imports {target}{" (in a function)" * local}: '
                             f'{LAYERS[layer_of(module)][0]} -> {LAYERS[layer_of(target)][0]}')
    assert not wrong, 'imports against the layers:\n' + '\n'.join(wrong)


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def test_no_import_cycles_within_a_layer():
    edges = {module: {target for target, _, _ in imports if target != 'mmlk'}
             for module, imports in import_graph().items()}
    assert not _cycles(edges), f'import cycles: {_cycles(edges)}'


def test_the_checks_catch_a_wrong_import(tmp_path, monkeypatch):
    """The walker itself: an upward import inside a function and a two-module cycle are found
    (so the tests above cannot pass by reading nothing)."""
    graph = import_graph()
    assert ('mmlk.core.validation', False) in [
        (t, local) for t, _, local in graph['mmlk.ops.large_kernel']]
    assert any(local for _, _, local in graph['mmlk.config_prefix'])  # lazy, but downward
    assert _cycles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [['a', 'b']]
    module = 'mmlk.core.validation'
    source = tmp_path / 'validation.py'
    source.write_text('def f():\n    from mmlk.utils import read_config\n')
    found = imports_of(module, str(source), package_modules())
    assert found == [('mmlk.utils', 2, True)] and layer_of('mmlk.utils') > layer_of(module)


def external_imports(path: str) -> List[str]:
    """The non-mmlk modules a file imports, anywhere in it."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append(node.module)
    return [name for name in names if name.split('.')[0] != 'mmlk']


@pytest.mark.parametrize('package, refused', [
    ('mmlk.core', ('mmengine.runner', 'mmengine.hooks', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')),
    ('mmlk.sparsity', ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain')),  # plain PyTorch
])
def test_the_lower_layers_do_not_import_the_frameworks(package, refused):
    wrong = [f'{module}: {name}' for module, path in package_modules().items()
             if module == package or module.startswith(package + '.')
             for name in external_imports(path)
             if any(name == r or name.startswith(r + '.') for r in refused)]
    assert not wrong, wrong


def test_the_depthwise_backends_never_import_the_dispatcher():
    graph = import_graph()
    backends = [m for m in graph if m.startswith('mmlk.ops.depthwise.')
                and m != 'mmlk.ops.depthwise.dispatch']
    assert set(backends) >= {'mmlk.ops.depthwise.aten', 'mmlk.ops.depthwise.cpu_kernel',
                             'mmlk.ops.depthwise.triton_kernels'}
    for module in backends:
        if module == 'mmlk.ops.depthwise.layer':  # the nn.Conv2d form calls the op
            continue
        assert 'mmlk.ops.depthwise.dispatch' not in {t for t, _, _ in graph[module]}, module


def test_building_a_backbone_loads_neither_the_engine_nor_the_tools():
    # (mmengine's runner itself is loaded by mmcv.cnn, which the backbones build norms with)
    code = ('import sys, mmlk.models.backbones as b; b.SLaK(arch=dict(depths=[1, 1, 1, 1], '
            'dims=[8, 16, 32, 64])); print(sorted(m for m in sys.modules if m.startswith('
            '("mmlk.utils", "mmlk.engine", "mmlk.sparsity"))))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    assert out == '[]', out


def test_importing_mmengines_runner_loads_only_the_light_loader_hook():
    """mmlk-config-prefix.pth makes mmlk's safe loader mmengine's in every process where mmlk
    is installed; importing mmengine's runner must not load mmlk's checkpoint code (nor its
    stack check) until a checkpoint is read."""
    code = ('import sys, mmengine.runner.checkpoint as c; '
            'print(c.CheckpointLoader._schemes[""].__module__); '
            'print(sorted(m for m in sys.modules if m.startswith("mmlk")))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-2:]
    assert out[0] == 'mmlk.core.mmengine_loader'
    assert out[1] == str(['mmlk', 'mmlk.config_prefix', 'mmlk.core', 'mmlk.core.mmengine_loader',
                          'mmlk.version'])


# --- what a run leaves on disk (tests/conftest.py) --------------------------------------------
def test_large_files_of_a_passed_test_are_dropped_and_the_rest_kept(tmp_path):
    big, small = tmp_path / 'w' / 'epoch_1.pth', tmp_path / 'w' / 'scalars.json'
    big.parent.mkdir()
    big.write_bytes(b'\0' * (LARGE_FILE_BYTES + 1))
    small.write_text('{}')
    outside = tmp_path.parent / f'{tmp_path.name}-outside.pth'
    outside.write_bytes(b'\0' * (LARGE_FILE_BYTES + 1))
    (tmp_path / 'link.pth').symlink_to(outside)  # a link is not followed
    try:
        assert drop_large_files(tmp_path) == LARGE_FILE_BYTES + 1
        assert not big.exists() and small.exists() and outside.exists()
    finally:
        outside.unlink()
