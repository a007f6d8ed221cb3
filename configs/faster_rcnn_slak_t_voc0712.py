_base_ = ['./slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py']
