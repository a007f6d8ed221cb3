# Entry point: ShiftwiseConv SW-T (CVPR 2025) + Cascade Mask R-CNN on COCO (see configs/shiftwise/
# for the family).
_base_ = ['./shiftwise/cascade-mask-rcnn_sw-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py']
