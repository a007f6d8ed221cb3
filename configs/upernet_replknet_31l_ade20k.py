# Entry point: RepLKNet-31L + UperNet on ADE20K (see configs/replknet/ for the family).
_base_ = ['./replknet/upernet_replknet-31l_8xb8-80k_ade20k-640x640.py']
