# Entry point: KW-ConvNeXt-T 1x + UperNet on ADE20K (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/upernet_kw1x-convnext-t_4xb4-160k_ade20k-512x512.py']
