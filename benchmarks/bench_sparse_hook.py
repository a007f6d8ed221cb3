"""Training-step overhead of dynamic sparse training for SLaK-T on CPU, in one process.

    python benchmarks/bench_sparse_hook.py [--size 128] [--batch 4] [--interval 100]

Times one AdamW training step of SLaK-T (+ a linear head) with and without the engine that
mmlk.SparseTrainingHook drives (masks re-applied after every optimizer step), and one prune/
grow update, amortised over an update interval (100 = the S/B setting; SLaK-T uses 2000).
Issue target: overhead <= 2%.
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from timing import Result, bench_main, interleaved_medians  # noqa: E402


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        from mmlk.models.backbones import SLaK
        self.backbone = SLaK('tiny', out_indices=(3, ), gap_before_final_norm=True)
        self.head = nn.Linear(998, 1000)

    def forward(self, x):
        return self.head(self.backbone(x)[0])


def run(size: int = 128, batch: int = 4, interval: int = 100, repeats: int = 5):
    """Dense vs sparse training step of SLaK-T; ``(results, notes)``."""
    from mmlk.sparsity import SparseEngine, select_sparse_targets

    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch, ))
    dense, sparse = Classifier(), Classifier()
    sparse.load_state_dict(dense.state_dict())
    engine = SparseEngine(select_sparse_targets(sparse, scope='model'), sparsity=0.4,
                          init='uniform', prune_rate=0.3, update_interval=0, total_steps=1000)
    engine.init_masks()
    optimizers = {}
    for name, model in (('dense', dense), ('sparse', sparse)):
        optimizers[name] = torch.optim.AdamW(model.parameters(), lr=1e-4)
    optimizers['sparse'].register_step_post_hook(lambda opt, a, k: engine.on_optimizer_step(opt))

    def step(name, model):
        def run():
            opt = optimizers[name]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return run

    times = interleaved_medians(dict(dense=step('dense', dense), sparse=step('sparse', sparse)),
                                warmup=1, repeats=repeats)
    updates = []
    for _ in range(3):
        start = time.perf_counter()
        engine.update(optimizers['sparse'])
        updates.append(time.perf_counter() - start)
    update = sorted(updates)[1]
    apply = interleaved_medians(dict(apply=engine.apply), warmup=2, repeats=21)['apply']
    with_hook = times['sparse'] + update / interval
    # The engine's only per-step work is re-applying the masks; timing it alone gives an
    # overhead estimate free of the +-5% step-to-step noise of the end-to-end comparison.
    overhead = (apply + update / interval) / times['dense']
    model, shape = 'SLaK-T + linear head', f'{batch}x3x{size}x{size}'
    notes = (f'sparse training (40%, {len(engine.targets)} layers): mask application '
             f'{apply:.4f} s per optimizer step, one prune/grow update {update:.3f} s; the '
             f'"from its parts" row adds them (update amortised over {interval} steps) to the '
             'dense step, free of the +-5% step-to-step noise of the end-to-end row')
    return [
        Result(model, shape, f'training step + SparseTrainingHook (update every {interval})',
               with_hook, times['dense'], None),
        Result(model, shape, f'overhead from its parts: dense step + masks + update / {interval}',
               times['dense'] * (1 + overhead), times['dense'], 1.02),
        Result(model, shape, 'overhead from its parts, SLaK-T\'s own interval (2000)',
               times['dense'] + apply + update / 2000, times['dense'], 1.02),
    ], notes


if __name__ == '__main__':
    bench_main(__doc__, run, size=128, batch=4, interval=100, repeats=5)
