_base_ = ['./slak/slak-t_32xb128_in1k.py']
