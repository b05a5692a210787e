"""``aml-console eval``: the attack suite (ART) against a registry version's ONNX artifact on a
held-out set, and its figures recorded on the version (``aml.robustness.*``, an MLflow run).

Modules: ``holdout`` (the data), ``onnx_model`` (the verified session, counted calls, an ART
classifier with finite-difference gradients), ``attacks`` (FGSM, PGD, HopSkipJump, extraction),
``detector`` (feature-squeezing figures at the configured threshold), ``recording`` (MLflow),
``service`` (request to record, with progress and a cancel flag). numpy, onnxruntime, ART and
scikit-learn are imported by the modules that use them, never by this package.
"""
