//! kube-sim: an in-process Kubernetes API server for the simulated world and the tests.
