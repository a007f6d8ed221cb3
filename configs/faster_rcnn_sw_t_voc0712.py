# Entry point: ShiftwiseConv SW-T (CVPR 2025) + Faster R-CNN on VOC (see configs/shiftwise/ for the
# family).
_base_ = ['./shiftwise/faster-rcnn_sw-t_fpn_ms-3x_voc0712.py']
