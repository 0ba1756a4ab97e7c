//go:build tools

// The node side of a real cluster (kubelet, kube-proxy) and kubectl, from the same
// k8s.io/kubernetes version and dependency pins as ../k8s, so the Go build cache is shared.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
