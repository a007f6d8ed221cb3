_base_ = ['./slak/slak-s_32xb128_in1k.py']
