# Entry point: RepLKNet-31B + Cascade Mask R-CNN on COCO (see configs/replknet/ for the family).
_base_ = ['./replknet/cascade-mask-rcnn_replknet-31b_fpn_4conv1fc-giou_ms-crop-3x_coco.py']
