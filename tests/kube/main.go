// kube-plane: one binary holding the parts of a Kubernetes control plane that the test suite
// starts (see up.sh). It picks the part from the name it is invoked by (a symlink) or from its
// first argument:
//
//	kube-plane etcd [flags]                     (or a symlink named etcd)
//	kube-plane kube-apiserver [flags]
//	kube-plane kube-controller-manager [flags]
//	kube-plane kubectl [args]
//	kube-plane kube-scheduler [flags]
//	kube-plane kube-proxy [flags]
//	kube-plane kubelet [flags]
//
// The last three run pods on a real node (cluster.sh); the control-plane tests use the first four.
//
// Each part runs the upstream command unchanged, built from the released Go modules (go.mod).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var parts = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "kube-scheduler", "kube-proxy", "kubelet"}

func main() {
	name := filepath.Base(os.Args[0])
	if !known(name) {
		if len(os.Args) < 2 || !known(os.Args[1]) {
			fmt.Fprintf(os.Stderr, "usage: %s {etcd|kube-apiserver|kube-controller-manager|kubectl|kube-scheduler|kube-proxy|kubelet} [args]\n", name)
			os.Exit(2)
		}
		name = os.Args[1]
		// The upstream commands read os.Args themselves: make it look as if they were invoked directly.
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	switch name {
	case "etcd":
		etcdmain.Main(os.Args)
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kubectl":
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) // nolint:errcheck
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	}
}

func known(name string) bool {
	for _, p := range parts {
		if p == name {
			return true
		}
	}
	return false
}
