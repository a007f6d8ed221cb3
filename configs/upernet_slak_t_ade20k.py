# Entry point: SLaK-T + UperNet on ADE20K (see configs/slak/ for the family).
_base_ = ['./slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py']
