# Entry point: KW-ResNet50 4x + Mask R-CNN, COCO 1x (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/mask-rcnn_kw4x-resnet50_fpn_ms-crop-1x_coco.py']
