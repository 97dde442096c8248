"""On-device detection: model manifests, ONNX runtime, output decoders, the detect/model CLI."""
