# Entry point: RepLKNet-31B + Faster R-CNN on VOC (see configs/replknet/ for the family).
_base_ = ['./replknet/faster-rcnn_replknet-31b_fpn_ms-3x_voc0712.py']
