_base_ = ['./slak/cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py']
