"""SparseTrainingHook through the real mmengine Runner on the embedded data."""
import textwrap

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import CONFIGS, TINY_BACKBONE, tiny_seg_config, write_config

HOOK = "dict(type='mmlk.SparseTrainingHook', sparsity=0.4, prune_rate=0.5, seed=3, {})"


def seg_config(tmp_path, demo_data, hook_args: str, name='cfg.py', extra=''):
    return tiny_seg_config(tmp_path, demo_data['ade20k'], name=name, extra=textwrap.dedent(f'''
        model = dict(backbone=dict(drop_path_rate=0.0))
        train_cfg = dict(val_interval=1000)
        default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=10),
                             logger=dict(interval=1))
        custom_hooks = [{HOOK.format(hook_args)}]
        ''') + textwrap.dedent(extra))


def run(cfg_path, work_dir, **options) -> Runner:
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(options)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def sparse_hook(runner):
    return next(h for h in runner.hooks if type(h).__name__ == 'SparseTrainingHook')


def test_snip_training_keeps_exact_sparsity_and_logs(tmp_path, demo_data):
    cfg = seg_config(tmp_path, demo_data, "init='snip', update_interval=2")
    runner = run(cfg, tmp_path / 'w', **{'train_cfg.max_iters': 4})
    engine = sparse_hook(runner).engine
    assert engine.step == 4
    layer = engine.layer_sparsity()
    assert len(set(round(v, 2) for v in layer.values())) > 1  # SNIP: layer-wise ratios differ
    # exact up to rounding per layer and the <1% zeros of layers SNIP made >= 99% dense
    dense = sum(engine.dense_layers.values())
    total = sum(t.num_units for t in engine.targets) + dense
    assert abs(engine.overall_sparsity() - 0.4) * total <= len(layer) + 0.01 * dense
    for t in engine.targets:
        assert t.name.startswith('backbone.')
        assert torch.count_nonzero(t.param.detach()[~t.mask]) == 0
    hub = runner.message_hub
    assert abs(hub.get_scalar('train/sparsity').current() - engine.overall_sparsity()) < 1e-9
    assert hub.get_scalar('train/num_pruned').current() > 0
    assert 'train/sparsity_stage0' in hub.log_scalars


def resume_config(tmp_path, demo_data):
    # No dropout anywhere: mmengine checkpoints do not carry the torch RNG state. SGD, because
    # even without this hook an mmengine resume on CPU reproduces the first gradients only to
    # ~1e-7 relative (a fresh process takes other oneDNN paths than a warm one), which Adam's
    # normalisation amplifies; the weights of the two runs then drift apart slowly.
    return seg_config(tmp_path, demo_data, "init='uniform', update_interval=4, total_steps=8",
                      extra='''
        model = dict(decode_head=dict(dropout_ratio=0.0), auxiliary_head=dict(dropout_ratio=0.0))
        optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
        ''')


def test_resume_restores_masks_and_schedule_exactly(tmp_path, demo_data):
    cfg = resume_config(tmp_path, demo_data)
    straight = run(cfg, tmp_path / 'a', **{'train_cfg.max_iters': 7})
    killed = tmp_path / 'b'
    run(cfg, killed, **{'train_cfg.max_iters': 4})   # killed right after the update at step 4
    resumed = run(cfg, killed, **{'train_cfg.max_iters': 7, 'resume': True,
                                  'load_from': str(killed / 'iter_4.pth')})
    a, b = sparse_hook(straight).engine, sparse_hook(resumed).engine
    assert a.step == b.step == 7 and b.total_steps == 8
    assert a.prune_rate == b.prune_rate
    for ta, tb in zip(a.targets, b.targets):
        assert torch.equal(ta.mask, tb.mask), ta.name
        assert torch.count_nonzero(tb.param.detach()[~tb.mask]) == 0
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=1e-3, msg=key)


def test_resumed_run_updates_on_the_same_schedule(tmp_path, demo_data):
    cfg = resume_config(tmp_path, demo_data)
    straight = run(cfg, tmp_path / 'a', **{'train_cfg.max_iters': 5})
    killed = tmp_path / 'b'
    run(cfg, killed, **{'train_cfg.max_iters': 3})
    resumed = run(cfg, killed, **{'train_cfg.max_iters': 5, 'resume': True,
                                  'load_from': str(killed / 'iter_3.pth')})
    a, b = sparse_hook(straight).engine, sparse_hook(resumed).engine
    # the update at step 4 ran after the resume, at the restored step and cosine position
    assert b.last_update == a.last_update and b.last_update['num_pruned'] > 0
    before = torch.load(killed / 'iter_3.pth', weights_only=False)['sparse_training']['masks']
    assert any(not torch.equal(before[t.name], t.mask) for t in b.targets)
    same = sum(int((ta.mask == tb.mask).sum()) for ta, tb in zip(a.targets, b.targets))
    assert same / sum(t.num_units for t in a.targets) > 0.999


def test_checkpoint_is_the_sparse_model_without_the_hook(tmp_path, demo_data):
    cfg = seg_config(tmp_path, demo_data, "init='ERK', update_interval=1")
    run(cfg, tmp_path / 'w', **{'train_cfg.max_iters': 2})
    ckpt = torch.load(tmp_path / 'w' / 'iter_2.pth', weights_only=False)
    masks = ckpt['sparse_training']['masks']
    assert ckpt['sparse_training']['step'] == 2
    for name, mask in masks.items():
        assert torch.count_nonzero(ckpt['state_dict'][name][~mask]) == 0
    plain = Config.fromfile(cfg)
    plain.custom_hooks = []
    plain.work_dir = str(tmp_path / 'test')
    plain.load_from = str(tmp_path / 'w' / 'iter_2.pth')
    runner = Runner.from_cfg(plain)
    metrics = runner.test()
    assert 'mIoU' in metrics
    for name, mask in masks.items():
        weight = dict(runner.model.named_parameters())[name]
        assert torch.count_nonzero(weight.detach()[~mask]) == 0


def test_frozen_mode_keeps_the_loaded_zero_pattern(tmp_path, demo_data):
    sparse = seg_config(tmp_path, demo_data, "init='uniform', update_interval=100")
    run(sparse, tmp_path / 'pre', **{'train_cfg.max_iters': 1})
    pretrained = tmp_path / 'pre' / 'iter_1.pth'
    zeros = {k: v == 0 for k, v in torch.load(pretrained, weights_only=False)['state_dict'].items()
             if v.dim() >= 2 and k.startswith('backbone.') and (v == 0).any()}
    frozen = seg_config(tmp_path, demo_data, 'frozen=True', name='frozen.py')
    runner = run(frozen, tmp_path / 'ft',
                 **{'train_cfg.max_iters': 3, 'load_from': str(pretrained)})
    engine = sparse_hook(runner).engine
    assert engine.update_interval == 0 and engine.step == 3
    params = dict(runner.model.named_parameters())
    assert {t.name for t in engine.targets} == set(zeros)
    for name, was_zero in zeros.items():
        assert torch.equal(params[name].detach() == 0, was_zero), name


def test_gradient_accumulation_counts_real_steps(tmp_path, demo_data):
    cfg = seg_config(tmp_path, demo_data, "init='uniform', update_interval=1",
                     extra='optim_wrapper = dict(accumulative_counts=2)')
    runner = run(cfg, tmp_path / 'w', **{'train_cfg.max_iters': 4})
    engine = sparse_hook(runner).engine
    assert engine.step == 2 and engine.total_steps == 2


def test_non_slak_backbone_trains_sparse(tmp_path, demo_data):
    root = demo_data['voc'] + '/'
    cfg = write_config(tmp_path, f'{CONFIGS}/faster_rcnn_slak_t_voc0712.py', f'''
        model = dict(
            backbone=dict(_delete_=True, type='ResNet', depth=18, num_stages=4,
                          out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), init_cfg=None),
            neck=dict(in_channels=[64, 128, 256, 512]))
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(160, 128), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]
        train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict(_delete_=True, type='VOCDataset', data_root={root!r},
                         ann_file='VOC2007/ImageSets/Main/trainval.txt',
                         data_prefix=dict(sub_data_root='VOC2007/'), pipeline=pipeline))
        optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
        train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3, val_interval=100)
        val_dataloader = None
        val_cfg = None
        val_evaluator = None
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        default_hooks = dict(checkpoint=dict(by_epoch=False, interval=100))
        log_processor = dict(by_epoch=False)
        custom_hooks = [{HOOK.format("init='ERK', growth='gradient', update_interval=2")}]
        ''')
    runner = run(cfg, tmp_path / 'w')
    engine = sparse_hook(runner).engine
    assert engine.step == 3 and engine.last_update['num_grown'] > 0
    names = [t.name for t in engine.targets]
    assert 'backbone.layer4.1.conv2.weight' in names and len(names) >= 5
    assert 'backbone.conv1.weight' in engine.dense_layers  # ERK keeps the small stem dense
    for t in engine.targets:
        assert torch.count_nonzero(t.param.detach()[~t.mask]) == 0


def test_complexity_tool_reports_sparse_numbers_in_both_forms(tmp_path):
    import json

    from mmlk.models.backbones import SLaK
    from conftest import TINY_ARCH, TINY_DIMS, run_tool
    cfg = write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py', f'''
        model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))
        ''')
    backbone = SLaK(arch=TINY_ARCH, out_indices=(3, ))
    g = torch.Generator().manual_seed(0)
    state, zeros = {}, 0
    for k, v in backbone.state_dict().items():
        v = v.clone()
        if v.dim() >= 2:  # zero half of every conv/linear weight
            drop = torch.rand(v.shape, generator=g) < 0.5
            v[drop] = 0
            zeros += int(drop.sum())
        state['backbone.' + k] = v
    state['head.fc.weight'] = torch.randn(1000, TINY_DIMS[-1])
    state['head.fc.bias'] = torch.zeros(1000)
    torch.save({'state_dict': state}, tmp_path / 'sparse.pth')
    run_tool('tools/analysis/complexity.py', cfg, str(tmp_path / 'sparse.pth'), '--shape', '64',
             '64', '--json', str(tmp_path / 'n.json'))
    stats = json.load(open(tmp_path / 'n.json'))
    train, deploy = stats['training'], stats['deploy']
    assert train['params'] == sum(p.numel() for p in backbone.parameters())
    assert train['nonzero_params'] <= train['params'] - zeros
    assert 0.4 < train['sparse_macs'] / train['dense_macs'] < 0.6
    # deploy: the 5x5 kernel merged into the Mx5 one, BNs folded -> fewer tensors and MACs
    assert deploy['params'] < train['params'] and deploy['dense_macs'] < train['dense_macs']


def test_frozen_mode_on_dense_weights_trains_dense(tmp_path, demo_data):
    # A random init of a full-size layer has a few exact zeros (trunc_normal of millions of
    # values); that is not a sparsity pattern and must not stop training.
    cfg = seg_config(tmp_path, demo_data, 'frozen=True', extra="""
        model = dict(backbone=dict(arch=dict(
            _delete_=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])))
        """)
    cfg_obj = Config.fromfile(cfg)
    cfg_obj.work_dir = str(tmp_path / 'w')
    runner = Runner.from_cfg(cfg_obj)

    class OddZeros(Hook):
        def before_train(self, runner):  # after init_weights, before the sparse hook
            with torch.no_grad():
                runner.model.backbone.stages[0][0].pwconv1.weight[0, :3] = 0

    runner.register_hook(OddZeros(), priority='HIGHEST')
    runner.train()
    hook = sparse_hook(runner)
    assert hook.engine is None
    assert torch.count_nonzero(runner.model.backbone.stages[0][0].pwconv1.weight) > 0


def test_slak_t_config_selects_the_head_and_snip_may_keep_it_dense():
    """configs/slak/slak-t_32xb128_in1k.py: the head is selected (scope='model', as the
    official engine); SNIP densities >= 0.99 keep a layer dense (the official 0.99 rule), which
    is what leaves the head, stem and downsamplers at sparsity 0 in a real run."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmlk.engine.hooks import SparseTrainingHook
    from mmlk.sparsity import SparseEngine, select_sparse_targets
    cfg = Config.fromfile(f'{CONFIGS}/slak/slak-t_32xb128_in1k.py')
    spec = next(h for h in cfg.custom_hooks if h['type'] == 'mmlk.SparseTrainingHook')
    assert spec['scope'] == 'model' and spec['init'] == 'snip'
    assert 'head' in open(f'{CONFIGS}/slak/slak-t_32xb128_in1k.py').read().split(
        'custom_hooks')[0].split('Dynamic sparse training')[1]
    init_default_scope('mmpretrain')
    cfg.model.backbone.arch = dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])
    cfg.model.backbone.kernel_size = (7, 7, 7, 5, 3)
    cfg.model.backbone.norm_cfg = dict(type='BN')
    cfg.model.head.in_channels = 83
    model = MODELS.build(cfg.model)
    hook = SparseTrainingHook(**{k: v for k, v in spec.items() if k != 'type'})
    targets = select_sparse_targets(model, **hook.selection)
    names = [t.name for t in targets]
    assert 'head.fc.weight' in names and 'backbone.downsample_layers.0.0.weight' in names
    # a SNIP score that puts the head at >= 99% density keeps it dense, out of the engine
    scores = [torch.rand_like(t.param) for t in targets]
    scores[names.index('head.fc.weight')] += 100.0
    engine = SparseEngine(targets, total_steps=10, sparsity=0.4, init='snip')
    engine.init_masks(scores)
    assert engine.layer_sparsity()['head.fc.weight'] == 0.0
    assert 'head.fc.weight' in engine.dense_layers
    assert abs(engine.overall_sparsity() - 0.4) < 0.01
