"""Caffe's schema (caffe.proto) and its generated message classes (caffe_pb2)."""
