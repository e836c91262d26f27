package profile

import "strings"

// Label and attribute names mapped onto Flamestream's dimensions, first match
// wins. Pyroscope SDKs send free-form tags (hostname, pod, ...); OpenTelemetry
// sends its semantic conventions (host.name, k8s.pod.name, ...): both are
// listed, and every other label stays only in the stored object.
var (
	hostKeys         = []string{"hostname", "host", "host.name", "host_name", "k8s.node.name", "node"}
	instanceTypeKeys = []string{"instance_type", "instance.type", "host.type"}
	k8sContainerKeys = []string{"container", "container_name", "k8s.container.name", "container.name"}
	k8sPodKeys       = []string{"pod", "pod_name", "k8s.pod.name"}
	k8sNamespaceKeys = []string{"namespace", "k8s.namespace.name"}
	containerIDKeys  = []string{"container.id", "container_id"}
	k8sPodUIDKeys    = []string{"k8s.pod.uid", "pod_uid"}
)

// lookup finds the value of the first key of keys that get has, non-empty.
func lookup(get func(string) string, keys []string) string {
	for _, k := range keys {
		if v := get(k); v != "" {
			return v
		}
	}
	return ""
}

// hostOf and instanceTypeOf map labels onto the host and instance type.
func hostOf(get func(string) string) string         { return lookup(get, hostKeys) }
func instanceTypeOf(get func(string) string) string { return lookup(get, instanceTypeKeys) }

// containerOf maps labels onto the raw container name the indexer reads with
// ContainerInfo. With a Kubernetes container, pod and namespace it writes the
// kubelet's Docker name "k8s_<container>_<pod>_<namespace>_<uid>_0", so the
// container and k8s_object dimensions follow the same rules as the gProfiler
// agent's; otherwise it is the container name, else the pod name, else the
// container id.
func containerOf(get func(string) string) string {
	c, pod, ns := lookup(get, k8sContainerKeys), lookup(get, k8sPodKeys), lookup(get, k8sNamespaceKeys)
	if c != "" && pod != "" && ns != "" && !strings.Contains(c+pod+ns, "_") {
		uid := lookup(get, k8sPodUIDKeys)
		if uid == "" || strings.Contains(uid, "_") {
			uid = "0"
		}
		return "k8s_" + c + "_" + pod + "_" + ns + "_" + uid + "_0"
	}
	if c != "" {
		return c
	}
	if pod != "" {
		return pod
	}
	return lookup(get, containerIDKeys)
}
