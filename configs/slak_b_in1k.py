_base_ = ['./slak/slak-b_32xb128_in1k.py']
