# Entry point: KW-ConvNeXt-T 1x + Mask R-CNN, COCO 1x (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/mask-rcnn_kw1x-convnext-t_fpn_ms-crop-1x_coco.py']
