"""Policy bundles: a directory with bundle.yaml (manifest) and policy.onnx (the whole chain)."""
