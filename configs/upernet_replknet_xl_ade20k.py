# Entry point: RepLKNet-XL + UperNet on ADE20K (see configs/replknet/ for the family).
_base_ = ['./replknet/upernet_replknet-xl_16xb2-160k_ade20k-640x640.py']
