// coredns: the cluster's DNS for the node tests (cluster.sh), CoreDNS built with only the plugins
// its Corefile uses, so the build stays a few minutes on two cores.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The order in which the server chains them (a subset of CoreDNS's plugin.cfg, same order).
var directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes", "template"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
