# Entry point: RepLKNet-31B + UperNet on ADE20K (see configs/replknet/ for the family).
_base_ = ['./replknet/upernet_replknet-31b_8xb16-40k_ade20k-512x512.py']
