"""SERVE: an inference server (ONNX Runtime, Open Inference Protocol v2 over REST and gRPC), an APS front server
that runs a user's pre/post-processing in front of it, one-command local serving, Kubernetes/KServe export, a load
tester and a capacity planner."""
