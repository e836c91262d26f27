package profile

import (
	"strings"
	"testing"
)

func TestContainerInfo(t *testing.T) {
	tests := []struct {
		name          string
		raw           string
		container, k8 string
	}{
		// Kubernetes.
		{"deployment pod loses the replicaset hash and pod id",
			"k8s_api_api-7f9c8d6b5-x2x9k_default_0b1c2d3e-1111-2222-3333-444455556666_0",
			"api_api", "api_default"},
		{"the original's documented example",
			"k8s_coredns_coredns-f9fd979d6-lgfsb_kube-system_d55a75f1-b1a1-4632-81c7-6107c8bfca0c_64",
			"coredns_coredns", "coredns_kube-system"},
		{"deployment with a dashed name",
			"k8s_server_recommendation-service-d7df97cbf-5qzml_shop_uid_3",
			"server_recommendation-service", "recommendation-service_shop"},
		{"statefulset pod loses its ordinal",
			"k8s_postgres_db-0_data_5e6f_1", "postgres_db", "db_data"},
		{"statefulset with a dashed name",
			"k8s_kafka_kafka-broker-12_streaming_uid_0", "kafka_kafka-broker", "kafka-broker_streaming"},
		{"daemonset pod loses its last component",
			"k8s_fluentd_fluentd-x2x9k_logging_uid_0", "fluentd_fluentd", "fluentd_logging"},
		{"pod without a controller hash loses its last component",
			"k8s_agent_my-agent-9vnln_ops_uid_2", "agent_my-agent", "my-agent_ops"},
		{"two plain components keep the first",
			"k8s_c_my-agent_ns_uid_0", "c_my", "my_ns"},
		{"cronjob pod loses the schedule number and pod id",
			"k8s_backup_backup-28374650-x7k2p_jobs_uid_0", "backup_backup", "backup_jobs"},
		{"single-component pod is kept",
			"k8s_web_nginx_default_uid_0", "web_nginx", "nginx_default"},
		{"leading random component is dropped",
			"k8s_w_123-worker-abc12_ns_uid_0", "w_worker-abc12", "worker-abc12_ns"},
		{"leading hex marker is dropped",
			"k8s_w_deadbeef-api-1_ns_uid_0", "w_api", "api_ns"},
		{"all-random pod name is kept whole",
			"k8s_w_123-456_ns_uid_0", "w_123-456", "123-456_ns"},
		{"hex-looking English word is kept",
			"k8s_ui_facade-service-7d4b9c8f6d-abcde_web_uid_0", "ui_facade-service", "facade-service_web"},
		{"hex-looking English word before an ordinal is kept",
			"k8s_c_decade-0_ns_uid_0", "c_decade", "decade_ns"},
		{"capitalized hex word is kept",
			"k8s_c_Deface-1_ns_uid_0", "c_Deface", "Deface_ns"},
		{"short hex component is not random",
			"k8s_c_cafe-beef-12_ns_uid_0", "c_cafe-beef", "cafe-beef_ns"},
		{"kube-proxy with a random suffix",
			"k8s_kube-proxy_kube-proxy-ab12c_kube-system_uid_1", "kube-proxy_kube-proxy", "kube-proxy_kube-system"},
		{"kube-proxy with a node name",
			"k8s_kube-proxy_kube-proxy-ip-10-0-1-23.ec2.internal_kube-system_uid_1", "kube-proxy_kube-proxy", "kube-proxy_kube-system"},
		{"kube-proxy with a GKE node name",
			"k8s_kube-proxy_kube-proxy-gke-main-default-pool-1a2b3c4d-xyz1_kube-system_uid_0", "kube-proxy_kube-proxy", "kube-proxy_kube-system"},
		{"flink pods are all flink",
			"k8s_flink-main-container_flink-taskmanager-1-2_analytics_uid_0", "flink-main-container_flink", "flink_analytics"},
		{"pause container",
			"k8s_POD_api-7f9c8d6b5-x2x9k_default_uid_0", "POD_api", "api_default"},
		{"empty k8s fields follow the rules",
			"k8s_____", "_", "_"},
		{"too few k8s parts keeps the raw name",
			"k8s_api_api-7f9c8d6b5-x2x9k_default_uid", "k8s_api_api-7f9c8d6b5-x2x9k_default_uid", ""},
		{"too many k8s parts keeps the raw name",
			"k8s_api_api-1_default_uid_0_extra", "k8s_api_api-1_default_uid_0_extra", ""},
		{"k8s prefix alone", "k8s_", "k8s_", ""},

		// ECS.
		{"ecs container",
			"ecs-nginx-3-nginx-f0e1d2c3b4a59687a801", "nginx_nginx", "nginx"},
		{"ecs with dashed family and name",
			"ecs-my-task-12-web-server-e0a1b2c3d4e5f6a7b8c9", "web-server_my-task", "my-task"},
		{"ecs revision is the first number",
			"ecs-svc-1-worker-2-c0ffee00", "worker-2_svc", "svc"},
		{"ecs agent container is kept raw", "ecs-agent", "ecs-agent", ""},
		{"ecs without a name is kept raw", "ecs-fam-3-c0ffee", "ecs-fam-3-c0ffee", ""},
		{"ecs without a revision is kept raw", "ecs-fam-x-web-c0ffee", "ecs-fam-x-web-c0ffee", ""},
		{"ecs without a family is kept raw", "ecs-3-web-x-c0ffee", "ecs-3-web-x-c0ffee", ""},
		{"ecs prefix alone", "ecs-", "ecs-", ""},

		// Others.
		{"empty name", "", "", ""},
		{"docker compose name", "gprofiler-ps-webapp", "gprofiler-ps-webapp", ""},
		{"docker compose v1 name", "project_web_1", "project_web_1", ""},
		{"random docker name", "festive_hopper", "festive_hopper", ""},
		{"container id", "3f4e5d6c7b8a", "3f4e5d6c7b8a", ""},
		{"k8s not at the start", "xk8s_a_b_c_d_e", "xk8s_a_b_c_d_e", ""},
		{"uppercase K8S is not k8s", "K8S_a_b-1_c_d_e", "K8S_a_b-1_c_d_e", ""},
		{"ecs not at the start", "my-ecs-a-1-b-c", "my-ecs-a-1-b-c", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, k := ContainerInfo(tt.raw)
			if c != tt.container || k != tt.k8 {
				t.Errorf("ContainerInfo(%q) = (%q, %q), want (%q, %q)", tt.raw, c, k, tt.container, tt.k8)
			}
		})
	}
}

func TestStripPodName(t *testing.T) {
	tests := []struct{ pod, want string }{
		{"", ""},
		{"nginx", "nginx"},
		{"-", ""},
		{"a-", "a"},
		{"-a", ""}, // the original joins the one empty component left
		{"a--b", "a-"},
		{"web-0", "web"},
		{"web-00001", "web"},
		{"web-abcdef", "web"},
		{"web-abcdef0123", "web"},
		{"web-ABCDEF", "web"},
		{"web-facade", "web"}, // nothing stripped: the last component goes
		{"web-facade-1", "web-facade"},
		{"web-efface-bedded-2", "web-efface-bedded"},
		{"web-abcde-1", "web-abcde"},
		{"0-1-2", "0-1-2"},
		{"flink", "flink"},
		{"flinkish-1", "flink"},
	}
	for _, tt := range tests {
		if got := stripPodName(tt.pod); got != tt.want {
			t.Errorf("stripPodName(%q) = %q, want %q", tt.pod, got, tt.want)
		}
	}
}

func TestHexWordsAreHexAndLongEnough(t *testing.T) {
	for w := range hexWords {
		if len(w) < 6 || !isHex(w) || strings.ToLower(w) != w {
			t.Errorf("hexWords has %q, which could never match", w)
		}
	}
}
