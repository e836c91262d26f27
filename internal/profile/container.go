package profile

import (
	"strings"
)

// hexWords are English words made only of the letters a-f, six letters or
// longer, that must not be mistaken for a random hex pod-name component: the
// original's list (from the nltk corpus) plus a few inflections.
var hexWords = map[string]bool{
	"accede":   true,
	"acceded":  true,
	"bacaba":   true,
	"baccae":   true,
	"beaded":   true,
	"bedded":   true,
	"bedead":   true,
	"bedeaf":   true,
	"beefed":   true,
	"cabbed":   true,
	"dabbed":   true,
	"deafed":   true,
	"decade":   true,
	"deeded":   true,
	"deedeed":  true,
	"deface":   true,
	"defaced":  true,
	"efface":   true,
	"effaced":  true,
	"fabaceae": true,
	"facade":   true,
}

// knownPodPrefixes are pod-name prefixes that stand for the whole pod name,
// as in the original (whose "kube_proxy" entry could never match a pod name
// and is left out).
var knownPodPrefixes = []string{"flink"}

// ContainerInfo derives the container name and the Kubernetes (or ECS)
// object name from a raw container name, with the rules of the original
// gProfiler Performance Studio:
//
//   - "k8s_<container>_<pod>_<namespace>_<uid>_<attempt>" (exactly six
//     "_"-separated parts) gives container "<container>_<stripped pod>" and
//     object "<stripped pod>_<namespace>". The pod name is stripped of its
//     random parts: a pod name starting with "flink" becomes "flink";
//     otherwise, of its "-"-separated components, leading random components
//     are dropped and the name is cut at the first random component after
//     them, where random means all decimal digits, or six or more hex digits
//     that do not spell an English word such as "facade"; when nothing was
//     cut and there is more than one component, the last component goes;
//     when nothing would remain the pod name is kept whole. A stripped name
//     starting with "kube-proxy-" becomes "kube-proxy".
//   - "ecs-<family>-<revision>-<name>-<hash>" gives container
//     "<name>_<family>" and object "<family>"; the revision is the first
//     all-digit component, and family and name may contain dashes. Names
//     starting with "ecs-" that do not have this shape (no revision, or an
//     empty family or name, such as "ecs-agent") are kept raw with no
//     object, where the original produced names like "_agent".
//   - Any other name is returned unchanged with an empty object.
func ContainerInfo(raw string) (container, k8sObject string) {
	if rest, ok := strings.CutPrefix(raw, "k8s_"); ok {
		parts := strings.Split(rest, "_")
		if len(parts) != 5 {
			return raw, ""
		}
		name, pod, namespace := parts[0], parts[1], parts[2]
		stripped := stripPodName(pod)
		if strings.HasPrefix(stripped, "kube-proxy-") {
			stripped = "kube-proxy"
		}
		return name + "_" + stripped, stripped + "_" + namespace
	}
	if strings.HasPrefix(raw, "ecs-") {
		parts := strings.Split(raw, "-")
		if len(parts) < 5 {
			return raw, ""
		}
		inner := parts[1 : len(parts)-1] // without "ecs" and the hash
		for r, c := range inner {
			if !isDecimal(c) {
				continue
			}
			family := strings.Join(inner[:r], "-")
			name := strings.Join(inner[r+1:], "-")
			if family == "" || name == "" {
				return raw, ""
			}
			return name + "_" + family, family
		}
		return raw, ""
	}
	return raw, ""
}

// stripPodName removes the random, per-pod parts of a Kubernetes pod name.
func stripPodName(pod string) string {
	for _, p := range knownPodPrefixes {
		if strings.HasPrefix(pod, p) {
			return p
		}
	}
	components := strings.Split(pod, "-")
	if len(components) < 2 {
		return pod
	}
	kept := 0 // components[:kept] are the meaningful ones
	start := 0
	for i, c := range components {
		if isRandomComponent(c) {
			if kept == 0 {
				start = i + 1 // leading random component: skip it
				continue
			}
			break
		}
		kept++
	}
	if kept == len(components) {
		kept-- // nothing stripped: the last component is most likely random
	}
	if kept == 0 {
		return pod
	}
	return strings.Join(components[start:start+kept], "-")
}

// isRandomComponent reports whether a pod-name component looks like a
// uniqueness marker: all decimal digits, or at least six hex digits that are
// not an English word.
func isRandomComponent(c string) bool {
	if isDecimal(c) {
		return true
	}
	return len(c) >= 6 && isHex(c) && !hexWords[strings.ToLower(c)]
}

// isDecimal reports whether s is a non-empty string of ASCII digits.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isHex reports whether s is a non-empty string of ASCII hex digits.
func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
