_base_ = ['./slak/upernet_slak-s_4xb4-160k_ade20k-512x512.py']
