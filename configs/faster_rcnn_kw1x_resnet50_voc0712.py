# Entry point: KW-ResNet50 1x + Faster R-CNN on VOC (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/faster-rcnn_kw1x-resnet50_fpn_ms-3x_voc0712.py']
