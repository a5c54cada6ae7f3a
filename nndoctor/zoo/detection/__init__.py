"""Detectors: YOLOv3-style and EfficientDet-style, with shared box utilities."""
