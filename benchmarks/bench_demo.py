"""The demo's training step (configs/demo/upernet_slak_t_ade20k_demo.py: UperNet + full SLaK-T,
batch 4 at 128x128, on the embedded ADE20K data) as `make demo` runs it, against the same
step as it ran before the depthwise op (issue 14), in one process.

    python benchmarks/bench_demo.py [--repeats 5] [--threads N]

Both models are built from the demo config with the same weights and the same batches (drawn
once from the demo's own dataloader and pipeline); each step is data preprocessing, forward,
loss, backward and the optimiser step, timed round-robin:

* ours: the demo config as shipped (mmlk's depthwise op, fused AdamW);
* before: ``MMLK_DW_IMPL=aten`` (aten's depthwise convolution and backward) and AdamW's
  per-tensor loop (``fused=False``), i.e. the demo before the issue.

Issue target: the demo >= 1.8x faster (ratio <= 0.56). The data loading and the two
evaluations of `make demo` are outside the step; the README gives the demo's wall time.
"""
import copy
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402

from timing import Result, bench_main, interleaved_medians  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'demo', 'upernet_slak_t_ade20k_demo.py')


def run(repeats: int = 5):
    """Demo training step, ours vs before the op; ``(results, notes)``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import mmlk  # noqa: F401  (registers mmlk's modules)
    from mmlk.utils.synthetic_datasets import make_ade20k
    from mmlk.ops import depthwise_impl

    cfg = Config.fromfile(CONFIG)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with tempfile.TemporaryDirectory() as tmp:
        root = make_ade20k(osp.join(tmp, 'ADEChallengeData2016'))
        loader_cfg = copy.deepcopy(cfg.train_dataloader)
        loader_cfg.dataset.data_root = root
        loader_cfg.num_workers = 0
        loader = iter(Runner.build_dataloader(loader_cfg, seed=0))
        batches = [next(loader) for _ in range(4)]

    from mmseg.registry import MODELS
    from mmengine.optim import build_optim_wrapper

    torch.manual_seed(0)
    models, wrappers = {}, {}
    for name, fused in (('ours', cfg.optim_wrapper.optimizer.get('fused', False)),
                        ('before', False)):
        model = MODELS.build(copy.deepcopy(cfg.model))
        if name == 'before':
            model.load_state_dict(models['ours'].state_dict())
        model.train()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.optimizer.fused = fused
        models[name], wrappers[name] = model, build_optim_wrapper(model, optim_cfg)
    counter = {'ours': 0, 'before': 0}

    def step(name, impl):
        def call():
            batch = batches[counter[name] % len(batches)]
            counter[name] += 1
            model = models[name]
            with depthwise_impl(impl):
                data = model.data_preprocessor(batch, True)
                loss, _ = model.parse_losses(model(**data, mode='loss'))
                wrappers[name].update_params(loss)
        return call

    times = interleaved_medians(dict(ours=step('ours', 'auto'), before=step('before', 'aten')),
                                warmup=2, repeats=repeats)
    results = [Result('UperNet + SLaK-T demo', '4x3x128x128',
                      'training step: demo vs before the depthwise op (aten, unfused AdamW)',
                      times['ours'], times['before'], 1 / 1.8)]
    notes = (f'demo step {times["ours"]:.2f} s/iteration (300 iterations: '
             f'{300 * times["ours"] / 60:.1f} min), before {times["before"]:.2f} s/iteration')
    return results, notes


if __name__ == '__main__':
    bench_main(__doc__, run, repeats=5)
