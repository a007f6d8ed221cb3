# RepLKNet-31B for inference: one biased 31x31 (...) kernel per block, the 5x5 branch and both
# BNs folded in (official small_kernel_merged=True). Load a checkpoint written by
# tools/reparameterize.py, or an official/mmpretrain deploy checkpoint converted with
# tools/model_converters/replknet_to_mmlk.py.
_base_ = ['./replknet-31b_32xb64_in1k.py']
model = dict(backbone=dict(deploy=True, with_cp=False))
