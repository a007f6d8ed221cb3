# Entry point: KW-ResNet50 1x + Mask R-CNN, COCO 1x (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/mask-rcnn_kw1x-resnet50_fpn_ms-crop-1x_coco.py']
