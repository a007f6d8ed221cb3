# Entry point: KW-MobileNetV2 1.0x (KW 1x) + Mask R-CNN, COCO 1x (see configs/kernelwarehouse/ for
# the family).
_base_ = ['./kernelwarehouse/mask-rcnn_kw1x-mobilenetv2-100_fpn_ms-crop-1x_coco.py']
