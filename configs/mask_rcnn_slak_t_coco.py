_base_ = ['./slak/mask-rcnn_slak-t_fpn_1x_coco.py']
